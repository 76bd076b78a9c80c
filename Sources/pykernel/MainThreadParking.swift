import Glibc

/// `pykernel run`: the program's thread (the interpreter thread) is the one the kernel delivers a
/// signal sent to the process to, as python3's only thread is.
///
/// Linux gives a process-directed signal (`kill` of the process or of its group: a terminal's
/// Ctrl-C) to the main thread first when that thread takes it. Here the main thread has nothing
/// left to do after `dispatchMain()`: libdispatch leaves it in `sigsuspend` with no signal blocked,
/// so it took every such signal, and ``SignalRouting`` passed it on to the interpreter thread a
/// few microseconds later. A blocking call there was then not interrupted by the signal itself:
/// after a Ctrl-C the child a program waited for died of it and `os.waitpid` returned its status
/// instead of failing with EINTR, and the `KeyboardInterrupt` python3 raises in the wait came 1–12
/// ms later, after the program had gone on (or, at its end, not at all: exit status 0).
///
/// ``park()`` sends the main thread ``parkingSignal``, whose handler blocks every signal but the
/// faults of its own code and sleeps for good (the process ends with `exit`): the kernel then
/// picks the threads that do not block the signal, the interpreter thread (which blocks none) or a
/// thread of the program's, and none of the engine's (Dispatch's threads block them). The signal's
/// action is put back before Python starts, which reads it.
enum MainThreadParking {
    /// The signal that parks the main thread: ignored by default, so one that is still pending
    /// when its action is put back is dropped, and used by nothing at start-up.
    private static let parkingSignal = SIGURG
    /// The process's main thread (``noteMainThread()``), written before any other thread reads it.
    nonisolated(unsafe) private static var mainThread = pthread_t()
    /// What the parked main thread blocks: everything but the faults of its own code.
    nonisolated(unsafe) private static var parkedMask = sigset_t()
    /// Posted by the main thread as it parks (``park()`` waits for it; `sem_post` is
    /// async-signal-safe).
    nonisolated(unsafe) private static var parked = sem_t()

    /// Remembers the calling thread, the main thread, and blocks ``parkingSignal`` there until
    /// `dispatchMain()` has handed the main queue to Dispatch's threads and waits in `sigsuspend`
    /// (which unblocks it): parked earlier, the main thread would never serve its queue.
    static func noteMainThread() {
        mainThread = pthread_self()
        var parking = sigset_t()
        sigemptyset(&parking)
        sigaddset(&parking, parkingSignal)
        pthread_sigmask(SIG_BLOCK, &parking, nil)
    }

    /// Parks the main thread noted by ``noteMainThread()`` and returns once it is parked (or after
    /// a second without it: the main thread then goes on taking signals as before), with
    /// ``parkingSignal``'s action as it was. Call once, before the engine starts.
    static func park() {
        sigfillset(&parkedMask)
        for fault in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS] { sigdelset(&parkedMask, fault) }
        guard sem_init(&parked, 0, 0) == 0 else { return }
        var parking = sigaction()
        parking.__sigaction_handler.sa_handler = parkingHandler
        sigfillset(&parking.sa_mask)
        var previous = sigaction()
        guard sigaction(parkingSignal, &parking, &previous) == 0 else { return }
        defer { sigaction(parkingSignal, &previous, nil) }
        guard pthread_kill(mainThread, parkingSignal) == 0 else { return }
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += 1
        while sem_timedwait(&parked, &deadline) != 0 && errno == EINTR {}
    }

    private static let parkingHandler: @convention(c) (Int32) -> Void = { _ in
        guard pthread_equal(pthread_self(), mainThread) != 0 else { return }
        sem_post(&parked)
        while true { sigsuspend(&parkedMask) }
    }
}
