/* OpenSSL's libcrypto (Debian libssl-dev), for SHA-256 only. The SHA256_* calls are
   deprecated in OpenSSL 3 in favour of EVP, but are the same code without an allocated
   context, so a Swift value type can hold their state. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
