#ifndef PYKERNEL_RAW_EXIT_H
#define PYKERNEL_RAW_EXIT_H

/// Makes the calling process linger `milliseconds` in C's `_exit` (and `_Exit`) before it ends,
/// as it does on a crash by signal: its other threads ship what the code wrote just before
/// (still in the output capture's pipes or its coalescing window). Only this process lingers:
/// a child it forks (`os.fork`, a subprocess's child before `exec`) leaves at once.
void pk_linger_at_raw_exit(int milliseconds);

#endif
