#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "mapped_reads.h"

/* Registered directories. The handler reads only slots marked READY; a slot's path is
   written while it is WRITING and never cleared, so a handler racing with an unregister
   compares a stale but whole path. */
enum { SLOTS = 64, PATH_BYTES = 1024 };
enum { FREE = 0, WRITING = 1, READY = 2 };

static struct {
    _Atomic int state;
    int registrations; /* under `lock` */
    size_t length;
    char path[PATH_BYTES];
} slots[SLOTS];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t installed = PTHREAD_ONCE_INIT;
static struct sigaction previous;
static _Atomic uint64_t faults;
static uintptr_t page_size = 4096;

/* Whether a mapping's file path lies under a registered directory. */
static int registered(const char *file, size_t n) {
    for (int i = 0; i < SLOTS; i++) {
        if (atomic_load_explicit(&slots[i].state, memory_order_acquire) != READY) continue;
        const size_t len = slots[i].length;
        if (n > len && file[len] == '/' && memcmp(file, slots[i].path, len) == 0) return 1;
    }
    return 0;
}

static uintptr_t hex(const char **p) {
    uintptr_t v = 0;
    for (;; (*p)++) {
        const char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

/* One line of /proc/self/maps: "start-end perms offset dev inode   path". Whether it maps
   `addr` from a file under a registered directory. */
static int line_covers(const char *line, size_t n, uintptr_t addr) {
    const char *p = line, *end = line + n;
    const uintptr_t start = hex(&p);
    if (p >= end || *p != '-') return 0;
    p++;
    const uintptr_t stop = hex(&p);
    if (addr < start || addr >= stop) return 0;
    for (int field = 0; field < 4; field++) { /* perms, offset, dev, inode */
        while (p < end && *p == ' ') p++;
        while (p < end && *p != ' ') p++;
    }
    while (p < end && *p == ' ') p++;
    return p < end && *p == '/' && registered(p, (size_t)(end - p));
}

/* Reads /proc/self/maps with async-signal-safe calls only; lines longer than the buffer
   are skipped (they are not ours). */
static int mapping_is_registered(uintptr_t addr) {
    const int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[PATH_BYTES + 4096];
    size_t have = 0;
    int found = 0, skipping = 0;
    for (;;) {
        const ssize_t got = syscall(SYS_read, fd, buf + have, sizeof buf - have);
        if (got <= 0) break;
        have += (size_t)got;
        size_t from = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] != '\n') continue;
            if (!skipping && line_covers(buf + from, i - from, addr)) found = 1;
            skipping = 0;
            from = i + 1;
        }
        if (found) break;
        if (from == 0 && have == sizeof buf) { skipping = 1; have = 0; continue; }
        memmove(buf, buf + from, have - from);
        have -= from;
    }
    syscall(SYS_close, fd);
    return found;
}

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    const int saved = errno;
    const uintptr_t addr = (uintptr_t)info->si_addr;
    if (info->si_code == BUS_ADRERR && mapping_is_registered(addr)) {
        void *page = (void *)(addr & ~(page_size - 1));
        if (mmap(page, page_size, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
            atomic_fetch_add_explicit(&faults, 1, memory_order_relaxed);
            errno = saved;
            return;
        }
    }
    /* Not ours: the previous action takes the fault when the access runs again. */
    (void)sig;
    (void)context;
    sigaction(SIGBUS, &previous, NULL);
    errno = saved;
}

static void install(void) {
    page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous);
}

/* The length of `dir` without trailing slashes. */
static size_t trimmed_length(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return n;
}

/* The slot holding a registration of the n bytes of `dir`, or -1. Under `lock`. */
static int registered_slot(const char *dir, size_t n) {
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].registrations > 0 && slots[i].length == n && memcmp(slots[i].path, dir, n) == 0) return i;
    return -1;
}

int kv_mapped_reads_register(const char *dir) {
    const size_t n = trimmed_length(dir);
    if (n == 0 || n >= PATH_BYTES) return -1;
    pthread_once(&installed, install);
    pthread_mutex_lock(&lock);
    int result = -1;
    const int held = registered_slot(dir, n);
    if (held >= 0) {
        slots[held].registrations++;
        result = 0;
    }
    for (int i = 0; i < SLOTS && result < 0; i++)
        if (slots[i].registrations == 0) {
            atomic_store_explicit(&slots[i].state, WRITING, memory_order_release);
            memcpy(slots[i].path, dir, n);
            slots[i].path[n] = 0;
            slots[i].length = n;
            slots[i].registrations = 1;
            atomic_store_explicit(&slots[i].state, READY, memory_order_release);
            result = 0;
        }
    pthread_mutex_unlock(&lock);
    return result;
}

void kv_mapped_reads_unregister(const char *dir) {
    const size_t n = trimmed_length(dir);
    pthread_mutex_lock(&lock);
    const int held = registered_slot(dir, n);
    if (held >= 0 && --slots[held].registrations == 0)
        atomic_store_explicit(&slots[held].state, FREE, memory_order_release);
    pthread_mutex_unlock(&lock);
}

uint64_t kv_mapped_reads_faults(void) { return atomic_load_explicit(&faults, memory_order_relaxed); }
