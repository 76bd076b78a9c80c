import PyKernelSupport
import Synchronization

/// Collects a pump's output in memory under the one output rule (`HeadTailBuffer`): each
/// stream and the interleaved one are taken as text, keep their first and last bytes and count
/// what was cut. The interleaved stream takes the streams' bytes by whole characters
/// (``CharacterInterleaver``): with one stream silent it is the other, byte for byte.
final class OutputCollector: OutputSink {
    private struct Buffers {
        var stdout: HeadTailBuffer
        var stderr: HeadTailBuffer
        var combined: HeadTailBuffer
        var interleaver = CharacterInterleaver()
    }

    private let buffers: Mutex<Buffers>

    init(limit: Int) {
        buffers = Mutex(Buffers(
            stdout: HeadTailBuffer(limit: limit), stderr: HeadTailBuffer(limit: limit), combined: HeadTailBuffer(limit: limit)))
    }

    func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        buffers.withLock { b in
            switch stream {
            case .stdout: b.stdout.append(bytes)
            case .stderr: b.stderr.append(bytes)
            }
            b.interleaver.append(stream, bytes) { b.combined.append($0) }
        }
    }

    func end(_ stream: OutputStreamName) {
        buffers.withLock { b in b.interleaver.end(stream) { b.combined.append($0) } }
    }

    /// The collected output as a result (the streams ended: a character either left
    /// incomplete is in the interleaved text as U+FFFD).
    func result(exitCode: Int32, timedOut: Bool) -> ExecResult {
        end(.stdout)
        end(.stderr)
        return buffers.withLock { b in
            ExecResult(
                exitCode: exitCode, result: b.combined.text(), stdout: b.stdout.text(), stderr: b.stderr.text(),
                timedOut: timedOut, resultOmittedBytes: b.combined.omittedBytes, stdoutOmittedBytes: b.stdout.omittedBytes,
                stderrOmittedBytes: b.stderr.omittedBytes, stdoutHeadBytes: b.stdout.keptHeadBytes,
                stderrHeadBytes: b.stderr.keptHeadBytes)
        }
    }
}
