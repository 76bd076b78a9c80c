import Foundation
import Glibc
import Logging
import PyKernelSupport
import _PyKernelProcessShims
import Synchronization

/// The one thread that watches every descriptor of a ``ProcessService``: output pipes of
/// one-shot runs, output FIFOs of session commands, shells' status pipes, and the process
/// descriptors (pidfds) of every child, whose readability means "exited".
///
/// One `epoll` instance, level-triggered: a handler reads at most one buffer per wake-up, so
/// streams are served fairly and in arrival order, and a handler that returns `false` is
/// removed. Handlers and ``schedule(_:)`` work run on the monitor thread, one at a time, and
/// must not block; the only descriptor closes of watched descriptors happen there too, so a
/// closed number can never be read by a handler of another owner.
///
/// Kept custom: swift-subprocess's own asynchronous I/O serves only the pipes of one `run`
/// and cancels their reads as soon as the child exits (losing what background processes
/// write in the drain window), and session FIFOs and status pipes outlive any one process.
final class IOMonitor: Sendable {
    /// What to do with a descriptor after its handler ran.
    enum Next {
        /// Keep watching it (also what a handler returns after unwatching its descriptor itself).
        case keep
        /// Stop watching it (its owner closes it).
        case stop
        /// Stop watching it and close it.
        case close
    }

    /// Called on the monitor thread when the descriptor is readable (or hung up), with the
    /// monitor's scratch buffer.
    typealias Handler = @Sendable (UnsafeMutableRawBufferPointer) -> Next

    private struct State {
        var handlers: [Int32: Handler] = [:]
        var work: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let epollFD: Int32
    private let wakeFD: Int32
    private let state = Mutex(State())
    private let logger: Logger
    /// Bytes read per wake-up of one descriptor.
    static let bufferSize = 64 * 1024

    init(logger: Logger) {
        self.logger = logger
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        EngineDescriptors.keep(epollFD, wakeFD)
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data(fd: wakeFD))
        if epollFD < 0 || wakeFD < 0 || epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) != 0 {
            logger.critical("the process monitor could not start", metadata: ["errno": "\(Posix.describe(errno))"])
        }
        Thread.detachNewThread { [self] in
            pk_name_this_thread("pk-process-io")
            run()
        }
    }

    /// Starts watching `fd` (made non-blocking), kept as the engine's (``EngineDescriptors``)
    /// until unwatched. Returns `false` if the monitor has stopped or `fd` is not a descriptor (-1).
    @discardableResult
    func watch(_ fd: Int32, _ handler: @escaping Handler) -> Bool {
        guard fd >= 0 else { return false }
        Posix.setNonBlocking(fd)
        EngineDescriptors.keep(fd)
        return state.withLock { s in
            guard !s.stopped else { return false }
            s.handlers[fd] = handler
            var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data(fd: fd))
            if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
                logger.error("could not watch a descriptor", metadata: ["fd": "\(fd)", "errno": "\(Posix.describe(errno))"])
                s.handlers[fd] = nil
                return false
            }
            return true
        }
    }

    /// Stops watching `fd`, and closes it when `close` (call it on the monitor thread: from
    /// ``schedule(_:)`` work, so that no handler is reading it meanwhile).
    func unwatch(_ fd: Int32, close: Bool = false) {
        EngineDescriptors.forget(fd)
        state.withLock { s in
            if s.handlers.removeValue(forKey: fd) != nil { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil) }
        }
        if close { Posix.closeQuietly(fd) }
    }

    /// Runs `work` on the monitor thread soon (immediately after the current wake-up).
    func schedule(_ work: @escaping @Sendable () -> Void) {
        let accepted = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.work.append(work)
            return true
        }
        if accepted { wake() } else { work() }
    }

    /// Ends the thread after running the work already scheduled. Descriptors still watched stay open.
    func stop() {
        state.withLock { $0.stopped = true }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(wakeFD, $0.baseAddress!, 8) }
    }

    private func run() {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { scratch.deallocate() }
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if count < 0 {
                if errno == EINTR { continue }
                logger.critical("the process monitor stopped", metadata: ["errno": "\(Posix.describe(errno))"])
                return
            }
            for event in events.prefix(Int(count)) {
                let fd = event.data.fd
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = withUnsafeMutableBytes(of: &value) { Glibc.read(wakeFD, $0.baseAddress!, 8) }
                    continue
                }
                guard let handler = state.withLock({ $0.handlers[fd] }) else { continue }
                switch handler(scratch) {
                case .keep: break
                case .stop: unwatch(fd)
                case .close: unwatch(fd, close: true)
                }
            }
            let (work, stopped) = state.withLock { s in
                defer { s.work.removeAll() }
                return (s.work, s.stopped)
            }
            for item in work { item() }
            if stopped {
                EngineDescriptors.forget(epollFD, wakeFD)
                close(epollFD)
                close(wakeFD)
                return
            }
        }
    }
}
