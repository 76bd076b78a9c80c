import Foundation
import MCP
import PyKernel
import PyKernelProcess
import PyKernelServer
import PyKernelSupport

/// How a run's result reads for a model: the output as text (stdout, then stderr marked as such,
/// with a note where the output limit cut the middle out), the traceback of an exception as
/// text with `isError`, and every field of the protocol's result as `structuredContent`.
enum RunRendering {
    /// - Parameters:
    ///   - context: The context the run was in (a dead `default` is only restarted).
    ///   - contextIsDead: Whether the run left its context dead (a process context whose worker
    ///     crashed, or was killed because the run did not stop after its timeout or an interrupt).
    static func toolResult(_ result: ExecutionResult, outputLimit: Int, context: ContextID, contextIsDead: Bool) -> CallTool.Result {
        var content = outputContent(
            stdout: (result.stdout, result.stdoutOmittedBytes), stderr: (result.stderr, result.stderrOmittedBytes), limit: outputLimit)
        for rich in result.results {
            if let shown = richContent(rich, limit: outputLimit) { content.append(shown) }
        }
        if let error = result.error {
            content.append(.plainText(withToolsCutNote(error.traceback, omitted: error.tracebackOmittedBytes, limit: outputLimit, of: "the traceback")))
            if contextIsDead {
                content.append(.plainText(
                    "[the context is dead: restart_context gives it a fresh worker process"
                        + (context == .default ? "]" : ", delete_context removes it]")))
            }
        } else if result.status != .ok {
            content.append(.plainText("[the run ended with status \(result.status.rawValue)]"))
        }
        if content.isEmpty { content.append(.plainText("[no output]")) }
        return .init(
            content: content,
            structured: (MCPFront.value(JSONRPCServer.resultJSON(result))),
            isError: result.status != .ok)
    }

    /// stdout as text, then stderr as text starting `[stderr]`, each with a note where the output
    /// limit cut its middle out (the note alone when the limit kept nothing); nothing for a stream
    /// that wrote nothing.
    static func outputContent(stdout: (text: String, omitted: Int), stderr: (text: String, omitted: Int), limit: Int) -> [Tool.Content] {
        var content: [Tool.Content] = []
        if !stdout.text.isEmpty || stdout.omitted > 0 {
            content.append(.plainText(withCutNote(stdout.text, omitted: stdout.omitted, limit: limit, stream: "stdout")))
        }
        if !stderr.text.isEmpty || stderr.omitted > 0 {
            content.append(.plainText("[stderr]\n" + withCutNote(stderr.text, omitted: stderr.omitted, limit: limit, stream: "stderr")))
        }
        return content
    }

    /// A rich result as MCP content: an image as image content with its MIME type (PNG, else
    /// JPEG, else any other `image/*` but SVG, which is text, whose data is base64 — MCP's image
    /// content takes any image type; a GIF was its base64 as text), else its HTML, Markdown or
    /// plain text as text (in that order of preference), else (a bundle the code published
    /// without them) its JSON, LaTeX or SVG, else its first representation by type name.
    /// A text cut at the limit shows this front's note (`nil`: a bundle the engine left nothing of).
    static func richContent(_ result: RichResult, limit: Int) -> Tool.Content? {
        for mime in ["image/png", "image/jpeg"] {
            if let image = result.data[mime] {
                return .image(data: image, mimeType: mime, annotations: nil, _meta: nil)
            }
        }
        let otherImages = result.data.filter { mime, data in
            mime.hasPrefix("image/") && mime != "image/svg+xml" && Data(base64Encoded: data) != nil
        }
        if let (mime, image) = otherImages.min(by: { $0.key < $1.key }) {
            return .image(data: image, mimeType: mime, annotations: nil, _meta: nil)
        }
        for mime in ["text/html", "text/markdown", "text/plain", "application/json", "text/latex", "image/svg+xml"] {
            if let text = result.data[mime] { return .plainText(withToolsCutNote(text, limit: limit, of: mime)) }
        }
        return result.data.min { $0.key < $1.key }.map { .plainText(withToolsCutNote($0.value, limit: limit, of: $0.key)) }
    }

    /// `text` with the engine's line where the output limit cut it (``HeadTailBuffer/omissionLine(_:)``,
    /// which names the protocol's `max_output_bytes`) worded as this front's notes are.
    /// - Parameter omitted: The bytes cut out, when known (else read from the line).
    static func withToolsCutNote(_ text: String, omitted: Int? = nil, limit: Int, of what: String) -> String {
        guard omitted != 0, let line = text.firstMatch(of: /\n\[\.\.\. ([0-9]+) bytes omitted: longer than max_output_bytes \.\.\.\]\n/) else {
            return text
        }
        let count = omitted.map(String.init) ?? String(line.output.1)
        let note = "\n[… \(count) bytes of \(what) cut here: the output limit keeps the first and last \(limit / 2) bytes …]\n"
        return text.replacingCharacters(in: line.range, with: note)
    }

    static func toolResult(_ result: ExecResult, outputLimit: Int) -> CallTool.Result {
        var content = outputContent(
            stdout: (result.stdout, result.stdoutOmittedBytes), stderr: (result.stderr, result.stderrOmittedBytes), limit: outputLimit)
        content.append(.plainText(result.timedOut
            ? "[timed out: the command's process group was killed; exit code \(result.exitCode)]"
            : "[exit code \(result.exitCode)]"))
        return .init(
            content: content,
            structured: MCPFront.value(ProcessMethods.execJSON(result)),
            isError: result.exitCode != 0)
    }

    /// The kept text with a note between its head and its tail, where the output limit cut
    /// `omitted` bytes out (the head is the first `limit / 2` bytes, cut at a character boundary,
    /// as ``HeadTailBuffer`` keeps it).
    static func withCutNote(_ text: String, omitted: Int, limit: Int, stream: String) -> String {
        guard omitted > 0 else { return text }
        let bytes = Array(text.utf8)
        let headLength = UTF8Text.completePrefixLength(bytes.prefix(limit / 2))
        let note = "\n[… \(omitted) bytes of \(stream) cut here: the output limit keeps the first and last \(limit / 2) bytes …]\n"
        return UTF8Text.decode(bytes[..<headLength]) + note + UTF8Text.decode(bytes[headLength...])
    }
}

extension Tool.Content {
    /// Plain text content, without annotations.
    static func plainText(_ text: String) -> Self { .text(text: text, annotations: nil, _meta: nil) }
}

extension CallTool.Result {
    /// A result with structured content (the SDK's generic initializer would encode it again).
    init(content: [Tool.Content], structured: Value, isError: Bool = false) {
        let structuredContent: Value? = structured
        self.init(content: content, structuredContent: structuredContent, isError: isError, _meta: nil)
    }
}
