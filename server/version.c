/* version.c - the library's version, as built. */
#include "sockpool.h"

/* The version this library was built as (SP_VERSION of its own header). */
const char *sp_version(void)
{
    return SP_VERSION;
}
