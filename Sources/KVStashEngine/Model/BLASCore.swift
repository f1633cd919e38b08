import Foundation
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS kernel selection.
///
/// Debian's OpenBLAS 0.3.21 does not know recent Intel server CPUs (Sapphire Rapids,
/// model 207) and falls back to its SSE3 "Prescott" kernels: sgemm runs about 3x slower
/// there than with the AVX-512 "SkylakeX" kernels the CPU supports. OpenBLAS picks its
/// kernels once, when the library loads, from `OPENBLAS_CORETYPE`, so the only fix from
/// inside a process is to set that variable and re-execute.
public enum BLASCore {
    /// The kernel family OpenBLAS should use on this CPU, when its own choice is a
    /// generic fallback; nil when its choice is fine or the user chose one.
    public static func betterCore() -> String? {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { return nil }
        let current = blasCoreName().lowercased()
        guard ["prescott", "core2", "nehalem", "katmai", "coppermine", "northwood", "banias"].contains(current) else { return nil }
        switch kernelISA() {
        case "avx512f": return "SkylakeX"
        case "avx2+fma": return "Haswell"
        default: return nil
        }
    }

    /// If OpenBLAS fell back to generic kernels on a CPU with AVX2/AVX-512, re-executes
    /// this program with `OPENBLAS_CORETYPE` set (once; the variable guards against loops).
    /// Call it first thing in `main`. Returns only when no re-exec was needed or possible.
    public static func reexecWithBetterCoreIfNeeded() {
        guard let core = betterCore() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let args = CommandLine.arguments
        var cArgs = args.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        // execv returned: it failed; carry on with the slower kernels.
        cArgs.forEach { free($0) }
    }
}
