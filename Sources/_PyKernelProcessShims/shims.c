// The shims are static inline functions in include/process_shims.h; a C target needs one source file.
#include "process_shims.h"
