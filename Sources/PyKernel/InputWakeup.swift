import Glibc
import PyKernelSupport
import Synchronization

/// What the interpreter thread's wait for input (``RunSupervisor``) blocks on instead of the
/// supervisor's condition: a pipe polled with the supervisor's lock released.
///
/// A condition wait goes on after a signal's handler, but python3's read of standard input ends
/// with `EINTR` when a signal arrives, so that its Python-level handler runs while the code waits
/// (`signal.alarm` around `input()`). `poll` ends with `EINTR` after a handler; and the routing
/// handler (``SignalRouting``), the engine's own trips of a signal for the interpreter thread and
/// the supervisor's changes write to the pipe (``wake()``) whether the thread polls yet or
/// not, so that a signal that comes just before the poll ends it too. A byte left from earlier
/// only makes one wait end at once: its caller runs the signal handlers (none pending: nothing
/// happens) and waits again.
final class InputWakeup: Sendable {
    /// The pipe (both ends non-blocking) and the process that made it: a process forked from this
    /// one (a prepared engine's worker) makes its own, not to share wake-ups with its parent.
    /// Made on the first wait (most engines never wait for input).
    private let pipe = Mutex<(read: Int32, write: Int32, process: pid_t)?>(nil)
    /// The pipe's write end (-1 before it is made): read by ``wake()``, which a signal handler
    /// calls, where no lock may be taken.
    private let writeEnd = Atomic<Int32>(-1)

    /// Waits until ``wake()`` or a signal's handler (or returns at once if one came since the last
    /// wait); call with `lock` held, which is released meanwhile. Without a descriptor (none could
    /// be made) it waits on `lock`'s condition, which the supervisor's changes wake too; signals
    /// are then noticed with the next of them.
    func wait(releasing lock: ConditionLock) {
        guard let readEnd = currentReadEnd() else { return lock.wait() }
        lock.unlock()
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        _ = poll(&entry, 1, -1)
        var bytes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while read(readEnd, &bytes, MemoryLayout.size(ofValue: bytes)) > 0 {}  // non-blocking: drains what woke it
        lock.lock()
    }

    /// Ends the interpreter thread's wait, or its next one. Async-signal-safe (an atomic load and
    /// a `write`, which fails harmlessly when the pipe is full: it is readable then): the routing
    /// handler calls it.
    func wake() {
        let number = writeEnd.load(ordering: .acquiring)
        guard number >= 0 else { return }
        var byte: UInt8 = 1
        let saved = errno
        _ = write(number, &byte, 1)
        errno = saved
    }

    private func currentReadEnd() -> Int32? {
        pipe.withLock { pipe in
            let process = getpid()
            if let pipe, pipe.process == process { return pipe.read }
            // In a forked process the parent's pipe is a copy: closed, not shared.
            if let pipe {
                EngineDescriptors.forget(pipe.read, pipe.write)
                close(pipe.read)
                close(pipe.write)
            }
            pipe = nil
            writeEnd.store(-1, ordering: .releasing)
            var ends: (Int32, Int32) = (-1, -1)
            guard withUnsafeMutableBytes(of: &ends, { Glibc.pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }) == 0 else { return nil }
            for end in [ends.0, ends.1] {
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            }
            EngineDescriptors.keep(ends.0, ends.1)
            pipe = (ends.0, ends.1, process)
            writeEnd.store(ends.1, ordering: .releasing)
            return ends.0
        }
    }
}
