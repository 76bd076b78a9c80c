import Foundation
import PyKernelSupport
import Glibc
import Synchronization

/// Reads a child's stdout and stderr on a dedicated thread with `poll`, handing each chunk to a
/// sink in the order the bytes arrive. Ends at end-of-file on both, or soon after ``stop()``
/// (after one last non-blocking read). Closes both descriptors when it ends.
final class StreamPump: Sendable {
    typealias Sink = @Sendable (OutputStreamName, UnsafeRawBufferPointer) -> Void

    /// Fires when the pump has ended: `true` at end-of-file, `false` when stopped.
    let finished = Latch<Bool>()
    private let stopRequested = Atomic<Bool>(false)

    /// - Parameters:
    ///   - stdoutFD, stderrFD: read ends, owned by the pump from now on.
    ///   - pollInterval: milliseconds between checks of ``stop()``.
    init(stdoutFD: Int32, stderrFD: Int32, pollInterval: Int32 = 50, name: String, sink: @escaping Sink) {
        Posix.setNonBlocking(stdoutFD)
        Posix.setNonBlocking(stderrFD)
        let thread = Thread { [self] in
            self.run(fds: [stdoutFD, stderrFD], pollInterval: pollInterval, sink: sink)
        }
        thread.name = name
        thread.start()
    }

    /// Asks the pump to end soon, after reading what is already buffered.
    func stop() { stopRequested.store(true, ordering: .releasing) }

    private func run(fds: [Int32], pollInterval: Int32, sink: Sink) {
        let streams: [OutputStreamName] = [.stdout, .stderr]
        var open = fds
        let bufferSize = 64 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }

        /// Reads once from `open[i]`; returns false at end-of-file (and closes it).
        func readOnce(_ i: Int) -> Bool? {
            let n = read(open[i], buffer.baseAddress!, bufferSize)
            if n > 0 {
                sink(streams[i], UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                return true
            }
            if n == 0 {
                Posix.closeQuietly(open[i])
                open[i] = -1
                return false
            }
            return nil  // EAGAIN / EINTR
        }

        var endOfFile = true
        while open.contains(where: { $0 >= 0 }) {
            if stopRequested.load(ordering: .acquiring) {
                // A last non-blocking drain of what is already in the pipes.
                for i in open.indices where open[i] >= 0 {
                    var reads = 0
                    while open[i] >= 0, reads < 256, readOnce(i) == true { reads += 1 }
                }
                endOfFile = false
                break
            }
            var pfds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let rc = poll(&pfds, nfds_t(pfds.count), pollInterval)
            if rc < 0 {
                if errno == EINTR { continue }
                endOfFile = false
                break
            }
            if rc == 0 { continue }
            for i in pfds.indices where pfds[i].fd >= 0 && pfds[i].revents != 0 {
                _ = readOnce(i)
            }
        }
        for fd in open where fd >= 0 { Posix.closeQuietly(fd) }
        finished.fire(endOfFile)
    }
}

/// Collects a pump's output in memory under the one output rule (`HeadTailBuffer`): each
/// stream and the interleaved one keep their first and last bytes and count what was cut.
final class OutputCollector: Sendable {
    private struct Buffers {
        var stdout: HeadTailBuffer
        var stderr: HeadTailBuffer
        var combined: HeadTailBuffer
    }

    private let buffers: Mutex<Buffers>

    init(limit: Int) {
        buffers = Mutex(Buffers(
            stdout: HeadTailBuffer(limit: limit), stderr: HeadTailBuffer(limit: limit), combined: HeadTailBuffer(limit: limit)))
    }

    func append(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        buffers.withLock { b in
            switch stream {
            case .stdout: b.stdout.append(bytes)
            case .stderr: b.stderr.append(bytes)
            }
            b.combined.append(bytes)
        }
    }

    /// The collected output as a result.
    func result(exitCode: Int32, timedOut: Bool) -> ExecResult {
        buffers.withLock { b in
            ExecResult(
                exitCode: exitCode, result: b.combined.text(), stdout: b.stdout.text(), stderr: b.stderr.text(),
                timedOut: timedOut, resultOmittedBytes: b.combined.omittedBytes, stdoutOmittedBytes: b.stdout.omittedBytes,
                stderrOmittedBytes: b.stderr.omittedBytes)
        }
    }
}
