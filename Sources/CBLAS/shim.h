#include <cblas.h>

/* OpenBLAS (pthreads build): stops its worker threads; the next threaded call starts
   them again. Not in cblas.h; exported by libopenblas. Must not run while any BLAS call
   is in flight (KVStashEngine's BLASWorkers guards it). */
int blas_thread_shutdown_(void);
