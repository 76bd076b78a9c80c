import Foundation
import Logging
import _PyKernelProcessShims

/// The fork server's side of its control socket (`pykernel fork-server`, started by
/// ``ProcessContexts``): a single-threaded loop that forks a worker per request and reaps them.
///
/// Messages are text, one per `SOCK_SEQPACKET` packet. From the server: `fork` (fork a child),
/// `kill PID` (SIGKILL the child's process group, if not reaped yet). To the server:
/// `ready PID` once, `child PID` with the child's stdin (write end), stdout and stderr (read ends)
/// and a pidfd attached, `exit PID exited|signaled N` when a child ended (after its process group
/// was killed, then reaped), `refused REASON` when a fork failed. The end of the control socket
/// (the server ended) kills every child's group and ends the fork server.
///
/// The fork server never waits to send: what the socket has no room for waits in an outbox (in
/// order) while requests are still read. A send that waited for room could wait forever: the
/// server's reading thread may itself be waiting to send a request this loop no longer reads.
///
/// A forked child runs in a session of its own (`setsid`: its pid is its process-group id) with
/// pipes as descriptors 0, 1 and 2, like a spawned worker; the fork server reaps it, so its
/// group id stays reserved until the group was killed.
public enum ForkServerLoop {
    /// The hidden first argument of `pykernel` that starts a fork server.
    public static let commandName = "fork-server"

    /// The control socket's descriptor in the fork server.
    public static let controlDescriptor: Int32 = 3

    /// Set (to 1) in a fork server's environment when the dynamic linker's `LD_BIND_NOW` was set
    /// for it only: ``forgetBindNow()`` then removes both again.
    static let bindNowMarker = "PYKERNEL_FORK_SERVER_BIND_NOW"

    /// The environment a fork server starts with, besides the server's: `LD_BIND_NOW=1`, so the
    /// dynamic linker resolves every symbol once in the fork server instead of lazily in each
    /// child (each lazy binding looks a symbol up and writes a page the child shares with the
    /// fork server: ~60 page faults and ~12 % of a child's start, see docs/architecture.md).
    /// Nothing when the server's own environment sets `LD_BIND_NOW`.
    static func bindNowEnvironment() -> [String: String] {
        getenv("LD_BIND_NOW") == nil ? ["LD_BIND_NOW": "1", bindNowMarker: "1"] : [:]
    }

    /// Removes `LD_BIND_NOW` from the C environment when only ``bindNowEnvironment()`` had set
    /// it, before Python copies the environment: user code, its subprocesses and the workers'
    /// own children never see it. (The dynamic linker read it at this process's start; libraries
    /// opened later, in the fork server or a child, are bound at once too.)
    public static func forgetBindNow() {
        guard getenv(bindNowMarker) != nil else { return }
        unsetenv("LD_BIND_NOW")
        unsetenv(bindNowMarker)
    }

    /// How long a child that crashes (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL) lives on before it
    /// dies of the signal: its output threads ship what the run wrote just before the crash
    /// (held for up to the engine's 20 ms coalescing window) ahead of the `crashed` answer.
    package static let crashLingerMilliseconds: Int32 = 200

    /// Serves fork requests on `control` until it closes.
    /// - Parameters:
    ///   - fork: Forks (0 in the child); throws when it refuses (e.g. another thread exists).
    ///   - child: Runs in the child once its descriptors 0, 1, 2 are the worker's pipes; never returns.
    public static func run(
        control: Int32, logger: Logger, fork: () throws -> pid_t, child: () -> Never
    ) -> Never {
        let childSignals = pk_sigchld_fd()
        // The children then allocate from fresh pages at the heap's top instead of holes scattered
        // over pages they share with this process: an idle child's own memory fell by ~0.3 MB
        // (see docs/architecture.md, "The fork server").
        _ = pk_malloc_take_free_chunks()
        var children = Set<pid_t>()
        _ = fcntl(control, F_SETFL, fcntl(control, F_GETFL) | O_NONBLOCK)
        var outbox = Outbox(control: control)
        outbox.send("ready \(getpid())")
        var polls = [pollfd(fd: control, events: Int16(POLLIN), revents: 0),
                     pollfd(fd: childSignals, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            polls[0].events = Int16(outbox.isEmpty ? POLLIN : POLLIN | POLLOUT)
            if poll(&polls, 2, -1) < 0 {
                if errno == EINTR { continue }
                logger.critical("fork server: poll failed: \(String(cString: strerror(errno)))")
                shutDown(children)
            }
            if polls[0].revents & Int16(POLLOUT) != 0 { outbox.flush() }
            if polls[1].revents != 0 {
                var records = [UInt8](repeating: 0, count: 128 * 16)  // signalfd_siginfo is 128 bytes
                while read(childSignals, &records, records.count) > 0 {}
                reapExited(&children, outbox: &outbox)
            }
            guard polls[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            var descriptors = [Int32](repeating: -1, count: 1)
            var count: Int32 = 0
            let length = pk_receive_message(control, &buffer, buffer.count, &descriptors, 1, &count)
            if count > 0 { close(descriptors[0]) }
            if length <= 0 {
                if length < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                shutDown(children)  // the server ended
            }
            let words = String(decoding: buffer[0..<length], as: UTF8.self).split(separator: " ")
            switch words.first {
            case "fork":
                do {
                    if let pid = try forkChild(control: control, childSignals: childSignals, outbox: &outbox, fork: fork, child: child) {
                        children.insert(pid)
                    }
                } catch {
                    logger.error("fork server: \(error)")
                    outbox.send("refused \(error)")
                }
            case "kill":
                if words.count == 2, let pid = pid_t(words[1]), children.contains(pid) { _ = kill(-pid, SIGKILL) }
            default:
                logger.error("fork server: unknown request \(words.joined(separator: " "))")
            }
        }
    }

    /// Forks one child with fresh pipes and hands their server-side ends to the server.
    private static func forkChild(
        control: Int32, childSignals: Int32, outbox: inout Outbox, fork: () throws -> pid_t, child: () -> Never
    ) throws -> pid_t? {
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        guard pk_pipe_cloexec(&input) == 0, pk_pipe_cloexec(&output) == 0, pk_pipe_cloexec(&errors) == 0 else {
            let reason = String(cString: strerror(errno))
            for fd in input + output + errors where fd >= 0 { close(fd) }
            throw WorkerError.spawn("pipe: \(reason)")
        }
        let pid: pid_t
        do {
            pid = try fork()
        } catch {
            for fd in input + output + errors { close(fd) }
            throw error
        }
        if pid == 0 {
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            close(control)
            close(childSignals)
            outbox.closeDescriptors()  // the other workers' pipes, still on their way to the server
            _ = setsid()
            dup2(input[0], STDIN_FILENO)
            dup2(output[1], STDOUT_FILENO)
            dup2(errors[1], STDERR_FILENO)
            for fd in input + output + errors { close(fd) }
            _ = pk_linger_on_crash(Self.crashLingerMilliseconds)
            child()
        }
        close(input[0]); close(output[1]); close(errors[1])
        let pidfd = pk_pidfd_open(pid)
        outbox.send("child \(pid)", descriptors: [input[1], output[0], errors[0]] + (pidfd >= 0 ? [pidfd] : []), child: pid)
        return pid
    }

    /// Reaps every child that ended: its process group is killed first (the zombie keeps the
    /// group id reserved), then its status is reported.
    private static func reapExited(_ children: inout Set<pid_t>, outbox: inout Outbox) {
        for pid in children {
            var info = siginfo_t()
            guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0,
                  info._sifields._sigchld.si_pid != 0 else { continue }
            _ = kill(-pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            children.remove(pid)
            let signaled = (status & 0x7F) != 0
            outbox.send("exit \(pid) \(signaled ? "signaled" : "exited") \(signaled ? status & 0x7F : (status >> 8) & 0xFF)")
        }
    }

    /// Kills every child's group, reaps them and exits.
    private static func shutDown(_ children: Set<pid_t>) -> Never {
        for pid in children { _ = kill(-pid, SIGKILL) }
        for pid in children {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        exit(0)
    }

    /// The messages to the server, sent in order as the (non-blocking) control socket has room.
    private struct Outbox {
        struct Message {
            var bytes: [UInt8]
            /// Passed along, closed here once sent.
            var descriptors: [Int32]
            /// The child the message hands over: killed when it cannot be (it is reaped later).
            var child: pid_t?
        }

        let control: Int32
        private var waiting: [Message] = []
        private var sent = 0  // `waiting[..<sent]` are gone (dropped in batches)

        init(control: Int32) { self.control = control }

        var isEmpty: Bool { sent == waiting.count }

        /// Sends `text` (with `descriptors`) now, or once what waits before it is sent.
        mutating func send(_ text: String, descriptors: [Int32] = [], child: pid_t? = nil) {
            waiting.append(Message(bytes: Array(text.utf8), descriptors: descriptors, child: child))
            flush()
        }

        /// Closes the descriptors of what waits (in a child: its copies of them).
        func closeDescriptors() {
            for message in waiting[sent...] { message.descriptors.forEach { close($0) } }
        }

        /// Sends what waits until the socket is full.
        mutating func flush() {
            while sent < waiting.count {
                let message = waiting[sent]
                let result = message.descriptors.withUnsafeBufferPointer { fds in
                    pk_send_message(control, message.bytes, message.bytes.count, fds.baseAddress, Int32(fds.count), 1)
                }
                if result != 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
                // Sent, or never will be (the server is gone: the socket's end is read next).
                for fd in message.descriptors { close(fd) }
                if result != 0, let child = message.child { _ = kill(-child, SIGKILL) }
                sent += 1
            }
            if sent == waiting.count {
                waiting.removeAll(keepingCapacity: waiting.count <= 64)
                sent = 0
            } else if sent >= 64 && sent * 2 >= waiting.count {
                waiting.removeFirst(sent)
                sent = 0
            }
        }
    }
}
