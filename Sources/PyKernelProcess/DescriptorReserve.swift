import Glibc
import Synchronization

/// A few descriptors held for the moments this process has none left (EMFILE: a client used
/// them up with PTYs or background commands). Ending processes needs descriptors — listing
/// /proc, reading a process's `stat` and `environ`, opening a pidfd to signal it — and a server
/// out of them must still end what it started: ``released(_:)`` closes the reserve for the
/// length of a short body that opens (and closes) what it needs, then takes the numbers again,
/// as many as it can.
///
/// Another thread may take a number released meanwhile: the body can still run short, and its
/// callers treat that as "not known" and try again (``ProcessKiller``).
enum DescriptorReserve {
    /// How many descriptors are held: a pass of ``ProcessKiller`` needs two or three at a time
    /// (/proc, a `stat` or `environ`, a pidfd), an asynchronous command's start two (its
    /// reporter's pidfd, a `stat`).
    static let size = 8

    private static let held = Mutex<[Int32]>([])

    /// Takes the reserve (as much of it as can be opened now; a later ``released(_:)`` completes it).
    static func fill() {
        held.withLock { refill(&$0) }
    }

    /// How many descriptors the reserve holds now (for tests).
    static var count: Int { held.withLock { $0.count } }

    /// Runs `body` with the reserve's descriptors closed, then takes them again. One body at a
    /// time: keep it short and make it close what it opened (a descriptor it keeps leaves the
    /// reserve one short until a number is free again).
    static func released<R: Sendable>(_ body: () -> R) -> R {
        held.withLock { descriptors in
            for descriptor in descriptors { Posix.closeQuietly(descriptor) }
            descriptors.removeAll()
            defer { refill(&descriptors) }
            return body()
        }
    }

    private static func refill(_ descriptors: inout [Int32]) {
        while descriptors.count < size {
            let descriptor = Posix.open("/dev/null", O_RDONLY)
            guard descriptor >= 0 else { return }
            descriptors.append(descriptor)
        }
    }
}
