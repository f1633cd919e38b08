import CBLAS
import CKernels

/// Sets the number of threads of the weight products (process-wide): OpenBLAS's, which
/// the small-row kernels of `Linear` follow too.
public func setThreads(_ n: Int) {
    openblas_set_num_threads(Int32(max(1, n)))
}

/// The number of threads OpenBLAS currently uses.
public func blasThreads() -> Int { Int(openblas_get_num_threads()) }

/// The OpenBLAS kernel family in use (e.g. "SkylakeX", "Haswell", "Zen").
public func blasCoreName() -> String {
    guard let p = openblas_get_corename() else { return "unknown" }
    return String(cString: p)
}

/// The instruction set the CKernels dispatcher picked ("avx512f", "avx2+fma", "default").
public func kernelISA() -> String { String(cString: kv_kernels_isa()) }

/// `C[m][n] = alpha * A[m][k] · B[n][k]^T + beta * C` (B is a GGUF-layout weight `[out][in]`).
@inline(__always)
func gemmNT(m: Int, n: Int, k: Int, alpha: Float = 1,
            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    BLASWorkers.noteCall()
    if m == 1 {
        // y = alpha * B · a + beta * y  (B is n x k row-major)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb),
                    a, 1, beta, c, 1)
        return
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// `C[m][n] = A[m][k] · B[k][n] + beta * C`.
@inline(__always)
func gemmNN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
            b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    BLASWorkers.noteCall()
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// `out[headDim] = V^T · s` with V `[visible][headDim]` at row stride `ldv`.
@inline(__always)
func gemvT(visible: Int, headDim: Int, v: UnsafePointer<Float>, ldv: Int,
                         s: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    BLASWorkers.noteCall()
    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(visible), Int32(headDim), 1, v, Int32(ldv),
                s, 1, 0, out, 1)
}

/// `C = A · B^T` on arrays, for benchmarks of the BLAS ceiling.
public func benchSgemm(m: Int, n: Int, k: Int, a: [Float], b: [Float], c: inout [Float]) {
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                gemmNT(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k,
                       beta: 0, c: cp.baseAddress!, ldc: n)
            }
        }
    }
}
