/* RocksDB read settings for page-cache-cold chunk reads, measured side by side on one
   table file: 16 values of an int8 256-token chunk of SmolLM2-135M (3,317,760 B, random
   bytes: a 4K-token document), written with the store's `chunks` settings (no compression,
   bloom filter, index and filter blocks in the block cache), then read back with each
   setting after the files were dropped from the page cache (posix_fadvise DONTNEED), the
   way the request path reads them (pinned Get, no checksum verification, no block-cache
   fill, every page touched), on 2 or 8 threads. A sequential pread of the same table file,
   also cold, is the reference. Built and run by bench/store_read_options.sh.
   usage: store-read-options DIR RUNS > JSON */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { VALUES = 16, VALUE_BYTES = 12960 * 256, MAX_RUNS = 15 };

typedef struct {
    const char *name;
    int advise_random;  /* advise_random_on_open: POSIX_FADV_RANDOM on every table file */
    int direct;         /* use_direct_reads: O_DIRECT, no page cache */
    int mmap;           /* allow_mmap_reads: values read in place from a mapping */
    int willneed;       /* with mmap: MADV_WILLNEED on every value first, then read */
    int threads;
    int warm;           /* 1: page cache left warm (not dropped) */
} Setting;

static rocksdb_t *db;
static rocksdb_readoptions_t *ro;
static int next_value;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void key_of(int i, char *k) { snprintf(k, 16, "chunk%04d", (i * 7) % VALUES); }

static void drop_page_cache(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d))) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) { posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); close(fd); }
    }
    closedir(d);
}

static rocksdb_options_t *options(const Setting *s) {
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    rocksdb_options_set_advise_random_on_open(o, s->advise_random);
    rocksdb_options_set_use_direct_reads(o, s->direct);
    rocksdb_options_set_allow_mmap_reads(o, s->mmap);
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_options_set_block_based_table_factory(o, t);
    return o;
}

static void *reader(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        const int i = next_value++;
        pthread_mutex_unlock(&lock);
        if (i >= VALUES) return NULL;
        char k[16], *err = NULL;
        key_of(i, k);
        rocksdb_pinnableslice_t *s = rocksdb_get_pinned(db, ro, k, strlen(k), &err);
        size_t n = 0;
        const char *v = s ? rocksdb_pinnableslice_value(s, &n) : NULL;
        if (err || n != VALUE_BYTES) { fprintf(stderr, "read %s: %s\n", k, err ? err : "wrong size"); exit(1); }
        volatile char sink = 0;
        for (size_t j = 0; j < n; j += 4096) sink += v[j];  /* as a decoder would */
        rocksdb_pinnableslice_destroy(s);
    }
}

static void willneed_all(void) {
    for (int i = 0; i < VALUES; i++) {
        char k[16], *err = NULL;
        key_of(i, k);
        rocksdb_pinnableslice_t *s = rocksdb_get_pinned(db, ro, k, strlen(k), &err);
        size_t n = 0;
        const char *v = rocksdb_pinnableslice_value(s, &n);
        const uintptr_t page = (uintptr_t)v & ~(uintptr_t)4095;
        madvise((void *)page, n + ((uintptr_t)v - page), MADV_WILLNEED);
        rocksdb_pinnableslice_destroy(s);
    }
}

/* Seconds to read every value with setting s (database opened before the clock starts). */
static double read_all(const char *dir, const Setting *s) {
    rocksdb_options_t *o = options(s);
    char *err = NULL;
    db = rocksdb_open(o, dir, &err);
    if (err) { fprintf(stderr, "open: %s\n", err); exit(1); }
    ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 0);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    if (!s->warm) drop_page_cache(dir);
    else { next_value = 0; reader(NULL); }  /* warm: read once first */
    next_value = 0;
    const double t0 = now();
    if (s->willneed) willneed_all();
    pthread_t th[16];
    for (int i = 0; i < s->threads; i++) pthread_create(&th[i], NULL, reader, NULL);
    for (int i = 0; i < s->threads; i++) pthread_join(th[i], NULL);
    const double t = now() - t0;
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    return t;
}

/* Seconds to pread every table file of dir front to back in 4 MiB pieces; *bytes read. */
static double read_sequential(const char *dir, long *bytes) {
    drop_page_cache(dir);
    static char buf[4 << 20];
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    *bytes = 0;
    const double t0 = now();
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".sst")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY);
        ssize_t n;
        off_t off = 0;
        while ((n = pread(fd, buf, sizeof buf, off)) > 0) off += n;
        *bytes += off;
        close(fd);
    }
    closedir(d);
    return now() - t0;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp);
    return x[n / 2];
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s DIR RUNS\n", argv[0]); return 2; }
    const char *dir = argv[1];
    int runs = atoi(argv[2]);
    if (runs < 1) runs = 1;
    if (runs > MAX_RUNS) runs = MAX_RUNS;
    {   /* write the values, flushed into one table file */
        const Setting w = {.advise_random = 1};
        rocksdb_options_t *o = options(&w);
        char *err = NULL;
        db = rocksdb_open(o, dir, &err);
        if (err) { fprintf(stderr, "open: %s\n", err); return 1; }
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        char *v = malloc(VALUE_BYTES);
        uint64_t x = 88172645463325252ull;
        for (int i = 0; i < VALUES; i++) {
            for (int j = 0; j < VALUE_BYTES; j++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; v[j] = (char)x; }
            char k[16];
            snprintf(k, 16, "chunk%04d", i);
            rocksdb_put(db, wo, k, strlen(k), v, VALUE_BYTES, &err);
            if (err) { fprintf(stderr, "put: %s\n", err); return 1; }
        }
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        rocksdb_flush(db, fo, &err);
        rocksdb_flushoptions_destroy(fo);
        rocksdb_writeoptions_destroy(wo);
        rocksdb_close(db);
        rocksdb_options_destroy(o);
        free(v);
    }
    const Setting settings[] = {
        {"buffered, advise_random_on_open (RocksDB default)", 1, 0, 0, 0, 2, 0},
        {"buffered, advise_random_on_open", 1, 0, 0, 0, 8, 0},
        {"buffered, no advise_random_on_open", 0, 0, 0, 0, 2, 0},
        {"buffered, no advise_random_on_open", 0, 0, 0, 0, 8, 0},
        {"direct reads", 1, 1, 0, 0, 2, 0},
        {"direct reads", 1, 1, 0, 0, 8, 0},
        {"mmap, advise_random_on_open", 1, 0, 1, 0, 2, 0},
        {"mmap, no advise_random_on_open", 0, 0, 1, 0, 2, 0},
        {"mmap, no advise_random_on_open, MADV_WILLNEED first", 0, 0, 1, 1, 2, 0},
        {"buffered, advise_random_on_open, page cache warm", 1, 0, 0, 0, 2, 1},
        {"buffered, no advise_random_on_open, page cache warm", 0, 0, 0, 0, 2, 1},
        {"direct reads, page cache warm", 1, 1, 0, 0, 2, 1},
        {"mmap, no advise_random_on_open, page cache warm", 0, 0, 1, 0, 2, 1},
    };
    const double mb = (double)VALUES * VALUE_BYTES / 1e6;
    double t[MAX_RUNS];
    long bytes = 0;
    for (int r = 0; r < runs; r++) t[r] = read_sequential(dir, &bytes);
    const double seq = median(t, runs);
    printf("{\n \"valueBytes\": %d, \"values\": %d, \"runs\": %d,\n", VALUE_BYTES, VALUES, runs);
    printf(" \"sequential\": {\"megabytes\": %.1f, \"ms\": %.1f, \"MBps\": %.0f},\n \"settings\": [\n",
           bytes / 1e6, seq * 1e3, bytes / 1e6 / seq);
    const int count = (int)(sizeof settings / sizeof *settings);
    for (int i = 0; i < count; i++) {
        for (int r = 0; r < runs; r++) t[r] = read_all(dir, &settings[i]);
        const double m = median(t, runs);
        printf("  {\"setting\": \"%s\", \"threads\": %d, \"cold\": %s, \"ms\": %.1f, \"MBps\": %.0f, \"overSequential\": %.2f}%s\n",
               settings[i].name, settings[i].threads, settings[i].warm ? "false" : "true", m * 1e3, mb / m,
               (mb / m) / (bytes / 1e6 / seq), i + 1 < count ? "," : "");
        fflush(stdout);
    }
    printf(" ]\n}\n");
    return 0;
}
