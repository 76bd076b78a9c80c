import PyKernelSupport

/// The output of a session command as it is written, then its exit: the elements of a followed
/// `session.logs`.
///
/// The sequence tails the command's log files on disk (checking every 25 ms), so it holds no
/// more than one 64 KiB chunk in memory however much the command prints, and a slow consumer
/// only delays its own reading. It yields ``SessionLogEvent/output(_:)`` for each new piece of
/// stdout or stderr — starting from the beginning of the logs — and
/// ``SessionLogEvent/dropped(stream:bytes:)`` where the capped log on disk no longer holds
/// what the follower has not read yet; it ends with
/// ``SessionLogEvent/exited(exitCode:)`` once the command has exited and its output has been
/// read. It throws ``ProcessAPIError/Code/sessionNotFound`` if the session is deleted
/// meanwhile, and ends early (returns `nil`) when the consuming task is cancelled.
public struct SessionLogStream: AsyncSequence, Sendable {
    /// An output chunk or the final exit.
    public typealias Element = SessionLogEvent
    /// Errors are ``ProcessAPIError``s.
    public typealias Failure = ProcessAPIError

    let session: Session
    let command: SessionCommand

    /// Makes an iterator that starts at the beginning of the logs.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(session: session, command: command)
    }

    /// Iterates a ``SessionLogStream``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        /// Errors are ``ProcessAPIError``s.
        public typealias Failure = ProcessAPIError

        let session: Session
        let command: SessionCommand
        private var offsets: [OutputStreamName: Int] = [.stdout: 0, .stderr: 0]
        private var carry: [OutputStreamName: [UInt8]] = [.stdout: [], .stderr: []]
        private var finished = false

        init(session: Session, command: SessionCommand) {
            self.session = session
            self.command = command
        }

        private static let chunkSize = 64 * 1024

        /// The next chunk of output, the exit, or `nil` after the exit.
        public mutating func next() async throws(ProcessAPIError) -> SessionLogEvent? {
            guard !finished else { return nil }
            while true {
                if Task.isCancelled {
                    finished = true
                    return nil
                }
                let settled = command.isSettled
                for stream in [OutputStreamName.stdout, .stderr] {
                    let log = command.logs.log(stream)
                    let offset = offsets[stream] ?? 0
                    let chunk = await Blocking.run { log.view().read(at: offset, count: Self.chunkSize) }
                    switch chunk {
                    case .dropped(let count):
                        offsets[stream] = offset + count
                        carry[stream] = []
                        return .dropped(stream: stream, bytes: count)
                    case .bytes(let bytes):
                        guard !bytes.isEmpty else { continue }
                        offsets[stream] = offset + bytes.count
                        let all = (carry[stream] ?? []) + bytes
                        let complete = UTF8Text.completePrefixLength(all)
                        carry[stream] = Array(all[complete...])
                        if complete > 0 {
                            return .output(SessionOutputChunk(stream: stream, text: UTF8Text.decode(all[..<complete])))
                        }
                    }
                }
                if settled {
                    for stream in [OutputStreamName.stdout, .stderr] {
                        if let rest = carry[stream], !rest.isEmpty {
                            carry[stream] = []
                            return .output(SessionOutputChunk(stream: stream, text: UTF8Text.decode(rest)))
                        }
                    }
                    finished = true
                    return .exited(exitCode: command.exited.value ?? -1)
                }
                if session.areFollowsEnded && !command.exited.isSet {
                    finished = true
                    throw ProcessAPIError(.shuttingDown, "The server's input ended; the logs of session '\(session.id)' are no longer followed.")
                }
                if session.isDeleted && !command.exited.isSet {
                    finished = true
                    if session.isEndedByShutdown {
                        throw ProcessAPIError(.shuttingDown, "The process service is shutting down; the logs of session '\(session.id)' are no longer followed.")
                    }
                    throw ProcessAPIError(.sessionNotFound, "session '\(session.id)' was deleted while its logs were followed")
                }
                await pause(0.025)
            }
        }
    }
}
