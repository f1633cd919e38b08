#ifndef KV_MAPPED_READS_H
#define KV_MAPPED_READS_H

#include <stdint.h>

/* Pages of memory-mapped files under a registered directory that cannot be read (an I/O
   error, or a file truncated under its mapping) read as zeros instead of raising SIGBUS:
   the SIGBUS handler maps a zero page over the faulting page and counts it. A store's
   checksums then reject what the page held, so the damage is detected, not served. Faults
   anywhere else go to the handler that was installed before (or the default action). */

/* Registers `dir` (an absolute path without symlinks) and installs the handler on first
   use. A directory may be registered more than once; each registration needs its own
   unregister. Returns 0, or -1 when the path is too long or every slot is taken. */
int kv_mapped_reads_register(const char *dir);

/* Drops one registration of `dir`. */
void kv_mapped_reads_unregister(const char *dir);

/* Pages read as zeros since the process started. */
uint64_t kv_mapped_reads_faults(void);

#endif
