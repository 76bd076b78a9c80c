import PyKernelSupport

/// The output of a session command as it is written, then its exit: the elements of a followed
/// `session.logs`.
///
/// The sequence tails the command's log files on disk (checking every 25 ms), so it holds no
/// more than one 64 KiB chunk in memory however much the command prints, and a slow consumer
/// only delays its own reading. It yields ``SessionLogEvent/output(_:)`` for each new piece of
/// stdout or stderr — starting from the beginning of the logs, in the order the server read
/// them from the command (the `order` log of ``CommandLogs``: as `output` has them) — and
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
        /// How far each stream was delivered (or skipped as dropped).
        private var position = StreamPositions()
        /// The switches of streams read from the `order` log and not yet reached.
        private var switches: ArraySlice<StreamPositions> = []
        /// The bytes of the `order` log read.
        private var orderOffset = 0
        private var carry: [OutputStreamName: [UInt8]] = [.stdout: [], .stderr: []]
        private var finished = false

        init(session: Session, command: SessionCommand) {
            self.session = session
            self.command = command
        }

        private static let chunkSize = 64 * 1024

        /// Where the run of one stream that starts at ``position`` ends: the next switch of
        /// streams, or, past the last one, what has been written so far. Past switches the
        /// capped `order` log dropped, the next one kept is the end (both streams may reach it:
        /// stdout is delivered first).
        private mutating func runEnd() async -> StreamPositions {
            while true {
                if let next = switches.first {
                    if position.hasReached(next) {
                        switches.removeFirst()
                        continue
                    }
                    return next
                }
                let (orderBytes, written) = command.logs.written()
                guard orderOffset < orderBytes else { return written }
                let (log, offset) = (command.logs.order, orderOffset)
                let count = Swift.min(orderBytes - offset, Self.chunkSize)
                switch await Blocking.run({ log.view().read(at: offset, count: count) }) {
                case .dropped(let bytes):
                    orderOffset += bytes
                case .bytes(let bytes):
                    let records = StreamPositions.records(bytes)
                    // The log stopped growing (a write failed, logged): the order of the rest is unknown.
                    guard !records.isEmpty else { return written }
                    switches = records[...]
                    orderOffset += records.count * StreamPositions.recordSize
                }
            }
        }

        /// The next chunk of output, the exit, or `nil` after the exit.
        public mutating func next() async throws(ProcessAPIError) -> SessionLogEvent? {
            guard !finished else { return nil }
            while true {
                if Task.isCancelled {
                    finished = true
                    return nil
                }
                let settled = command.isSettled
                let end = await runEnd()
                if let stream = [OutputStreamName.stdout, .stderr].first(where: { position[$0] < end[$0] }) {
                    if let event = await read(stream, upTo: end[stream]) { return event }
                    continue
                }
                // Every run ended at a whole character: nothing is carried.
                if settled {
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

        /// Reads the next bytes of `stream` from its log, up to `end`: the text of its whole
        /// characters (all of them at `end`, a point where the stream was written up to a
        /// whole character), or its bytes the log dropped; `nil` if no whole character was read.
        private mutating func read(_ stream: OutputStreamName, upTo end: Int) async -> SessionLogEvent? {
            let (log, offset) = (command.logs.log(stream), position[stream])
            let count = Swift.min(end - offset, Self.chunkSize)
            switch await Blocking.run({ log.view().read(at: offset, count: count) }) {
            case .dropped(let bytes):
                // A character cut by the dropped bytes is dropped with them.
                let cut = carry[stream]?.count ?? 0
                position[stream] = offset + bytes
                carry[stream] = []
                return .dropped(stream: stream, bytes: cut + bytes)
            case .bytes(let bytes) where bytes.isEmpty:
                // The log stopped growing (a write failed, logged): its bytes are lost.
                let cut = carry[stream]?.count ?? 0
                position[stream] = end
                carry[stream] = []
                return .dropped(stream: stream, bytes: cut + end - offset)
            case .bytes(let bytes):
                position[stream] = offset + bytes.count
                let all = (carry[stream] ?? []) + bytes
                let complete = position[stream] == end ? all.count : UTF8Text.completePrefixLength(all)
                carry[stream] = Array(all[complete...])
                guard complete > 0 else { return nil }
                return .output(SessionOutputChunk(stream: stream, text: UTF8Text.decode(all[..<complete])))
            }
        }
    }
}
