import Foundation
import MCP
import PyKernel
import PyKernelProcess
import PyKernelServer
import PyKernelSupport

/// How a run's result reads for a model: the output as text (stdout, then stderr marked as such,
/// with a note where the output limit cut the middle out), its rich results (images as image
/// content, as many as the image limit holds), the traceback of an exception as text with
/// `isError`, and every field of the protocol's result but the images' data as `structuredContent`.
enum RunRendering {
    /// - Parameters:
    ///   - context: The context the run was in (a dead `default` is only restarted).
    ///   - contextIsDead: Whether the run left its context dead (a process context whose worker
    ///     crashed, or was killed because the run did not stop after its timeout or an interrupt).
    ///   - imageLimit: The bytes of base64 the images of one result may take together
    ///     (`--max-image-bytes`): the images from the first one past it on are left out, a
    ///     text item in their place saying how many and how to see them.
    static func toolResult(_ result: ExecutionResult, context: ContextID, contextIsDead: Bool, imageLimit: Int) -> CallTool.Result {
        var content = outputContent(
            stdout: .init(text: result.stdout, omitted: result.stdoutOmittedBytes, headBytes: result.stdoutHeadBytes),
            stderr: .init(text: result.stderr, omitted: result.stderrOmittedBytes, headBytes: result.stderrHeadBytes))
        var imageBytes = 0
        var leftOut: (count: Int, bytes: Int, at: Int)?
        for rich in result.results {
            guard let shown = richContent(rich) else { continue }
            if case .image(let data, _, _, _) = shown {
                let size = data.utf8.count
                if leftOut == nil, size <= imageLimit - imageBytes {
                    imageBytes += size
                } else {
                    let earlier = leftOut ?? (0, 0, content.count)
                    leftOut = (earlier.count + 1, earlier.bytes + size, earlier.at)
                    continue
                }
            }
            content.append(shown)
        }
        if let leftOut {
            content.insert(.plainText(imagesLeftOutNote(count: leftOut.count, bytes: leftOut.bytes, limit: imageLimit)), at: leftOut.at)
        }
        if let error = result.error {
            content.append(.plainText(withToolsCutNote(error.traceback, omitted: error.tracebackOmittedBytes, of: "the traceback")))
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
            structured: (MCPFront.value(JSONRPCServer.resultJSON(withoutImages(result)))),
            isError: result.status != .ok)
    }

    /// The note in place of the images past the output limit.
    static func imagesLeftOutNote(count: Int, bytes: Int, limit: Int) -> String {
        "[\(count) \(count == 1 ? "image" : "images") left out from here (\(bytes) bytes of base64): the images of one result "
            + "are kept to \(limit) bytes (--max-image-bytes). Save figures to files (plt.savefig('fig1.png')) and show a few "
            + "per call (display(IPython.display.Image('fig1.png'))), or make them smaller (a lower dpi)]"
    }

    /// `result` without the representations its content shows as images (``imageRepresentation(of:)``):
    /// an image goes to the client once, in `content`, where the output limit bounds it
    /// (`structuredContent` has no such bound, and its readers want the fields, not the pixels).
    static func withoutImages(_ result: ExecutionResult) -> ExecutionResult {
        guard result.results.contains(where: { imageRepresentation(of: $0) != nil }) else { return result }
        let results = result.results.map { rich -> RichResult in
            guard let (mime, _) = imageRepresentation(of: rich) else { return rich }
            return RichResult(
                isMainResult: rich.isMainResult, data: rich.data.filter { $0.key != mime },
                metadataJSON: rich.metadataJSON, chartJSON: rich.chartJSON)
        }
        return ExecutionResult(
            status: result.status, stdout: result.stdout, stderr: result.stderr,
            stdoutOmittedBytes: result.stdoutOmittedBytes, stderrOmittedBytes: result.stderrOmittedBytes,
            stdoutHeadBytes: result.stdoutHeadBytes, stderrHeadBytes: result.stderrHeadBytes,
            error: result.error, executionCount: result.executionCount, duration: result.duration, results: results)
    }

    /// The representation of a rich result its content shows as an image, with its MIME type:
    /// PNG, else JPEG, else any other `image/*` but SVG (which is text) whose data is base64.
    static func imageRepresentation(of result: RichResult) -> (mime: String, data: String)? {
        for mime in ["image/png", "image/jpeg"] {
            if let image = result.data[mime] { return (mime, image) }
        }
        let otherImages = result.data.filter { mime, data in
            mime.hasPrefix("image/") && mime != "image/svg+xml" && Data(base64Encoded: data) != nil
        }
        return otherImages.min { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// What a result kept of one output stream: the head and tail joined, the bytes cut between
    /// them, and how many bytes of the kept text are the head.
    struct KeptStream {
        let text: String
        let omitted: Int
        /// The bytes of `text` before the cut (the engine's kept head; `text`'s length when nothing was cut).
        let headBytes: Int
    }

    /// stdout as text, then stderr as text starting `[stderr]`, each with a note where the output
    /// limit cut its middle out (the note alone when the limit kept nothing); nothing for a stream
    /// that wrote nothing.
    static func outputContent(stdout: KeptStream, stderr: KeptStream) -> [Tool.Content] {
        var content: [Tool.Content] = []
        if !stdout.text.isEmpty || stdout.omitted > 0 {
            content.append(.plainText(withCutNote(stdout, stream: "stdout")))
        }
        if !stderr.text.isEmpty || stderr.omitted > 0 {
            content.append(.plainText("[stderr]\n" + withCutNote(stderr, stream: "stderr")))
        }
        return content
    }

    /// A rich result as MCP content: an image as image content with its MIME type (PNG, else
    /// JPEG, else any other `image/*` but SVG, which is text, whose data is base64 — MCP's image
    /// content takes any image type; a GIF was its base64 as text), else its HTML, Markdown or
    /// plain text as text (in that order of preference), else (a bundle the code published
    /// without them) its JSON, LaTeX or SVG, else its first representation by type name. A plain
    /// text that is only Python's default repr (``isPlaceholder(_:)``: IPython's `SVG`, `JSON`,
    /// `Math` and `Latex` give `<IPython.core.display.SVG object>`) gives way to the SVG's source,
    /// the JSON (`application/json` or another `+json` type), or the LaTeX, in that order.
    /// A text cut at the limit shows this front's note (`nil`: a bundle the engine left nothing of).
    static func richContent(_ result: RichResult) -> Tool.Content? {
        if let (mime, image) = imageRepresentation(of: result) {
            return .image(data: image, mimeType: mime, annotations: nil, _meta: nil)
        }
        for mime in ["text/html", "text/markdown"] {
            if let text = result.data[mime] { return .plainText(withToolsCutNote(text, of: mime)) }
        }
        let fallbacks: [String] = switch result.data["text/plain"] {
        case .some(let plain) where !isPlaceholder(plain): ["text/plain"]
        case .some: ["image/svg+xml", "application/json"] + result.data.keys.filter { $0.hasSuffix("+json") }.sorted() + ["text/latex", "text/plain"]
        case nil: ["application/json", "text/latex", "image/svg+xml"]
        }
        for mime in fallbacks {
            if let text = result.data[mime] { return .plainText(withToolsCutNote(text, of: mime)) }
        }
        return result.data.min { $0.key < $1.key }.map { .plainText(withToolsCutNote($0.value, of: $0.key)) }
    }

    /// Whether a `text/plain` is only Python's default repr, which says nothing of the value:
    /// `<module.Class object>` (IPython's display objects) or `<... at 0x7f...>`.
    static func isPlaceholder(_ text: String) -> Bool {
        text.wholeMatch(of: /<[^<>\n]*(?: object| at 0x[0-9a-fA-F]+)>/) != nil
    }

    /// `text` with the engine's line where the output limit cut it (``HeadTailBuffer/omissionLine(_:)``,
    /// which names the protocol's `max_output_bytes`) worded as this front's notes are.
    /// - Parameter omitted: The bytes cut out, when known (else read from the line).
    static func withToolsCutNote(_ text: String, omitted: Int? = nil, of what: String) -> String {
        guard omitted != 0, let line = text.firstMatch(of: /\n\[\.\.\. ([0-9]+) bytes omitted: longer than max_output_bytes \.\.\.\]\n/) else {
            return text
        }
        let count = omitted.map(String.init) ?? String(line.output.1)
        let (head, tail) = (text[..<line.range.lowerBound], text[line.range.upperBound...])
        return String(head) + cutNote(omitted: count, of: what, head: head.utf8.count, tail: tail.utf8.count) + String(tail)
    }

    /// The note where the output limit cut `omitted` bytes of `what` out, saying how many bytes
    /// before and after it were kept (the halves of the limit, each cut at a character boundary).
    private static func cutNote(omitted: String, of what: String, head: Int, tail: Int) -> String {
        "\n[… \(omitted) bytes of \(what) cut here: the output limit kept the first \(head) and the last \(tail) bytes …]\n"
    }

    static func toolResult(_ result: ExecResult) -> CallTool.Result {
        var content = outputContent(
            stdout: .init(text: result.stdout, omitted: result.stdoutOmittedBytes, headBytes: result.stdoutHeadBytes),
            stderr: .init(text: result.stderr, omitted: result.stderrOmittedBytes, headBytes: result.stderrHeadBytes))
        content.append(.plainText(result.timedOut
            ? "[timed out: the command's process group was killed; exit code \(result.exitCode)]"
            : "[exit code \(result.exitCode)]"))
        return .init(
            content: content,
            structured: MCPFront.value(ProcessMethods.execJSON(result)),
            isError: result.exitCode != 0)
    }

    /// The kept text with a note between its head and its tail, where the output limit cut
    /// bytes out. The head is the one the engine kept: recomputed from the joined text, it took
    /// the tail's first bytes when the limit's half fell inside a character.
    static func withCutNote(_ kept: KeptStream, stream: String) -> String {
        guard kept.omitted > 0 else { return kept.text }
        let bytes = Array(kept.text.utf8)
        let headLength = UTF8Text.completePrefixLength(bytes.prefix(kept.headBytes))
        let note = cutNote(omitted: String(kept.omitted), of: stream, head: headLength, tail: bytes.count - headLength)
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
