import ArgumentParser
import Foundation
import Glibc
import Logging
import PyKernel
import PyKernelSupport
import Synchronization

/// `pykernel run FILE.py` / `pykernel run -c CODE` / `pykernel run -` (the program read from
/// standard input, as `pykernel run` alone when standard input is not a terminal): runs code in
/// a fresh context and prints its output like `python3 FILE.py` would.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Python file (or -c CODE) in a fresh context, printing its output like python3.")

    // As python3's: the code is the next argument whatever it looks like, and every argument after
    // it is the code's (``GivenArguments/parsedArguments`` leaves them out).
    @Option(name: .customShort("c"), parsing: .unconditional,
            help: "Code to run instead of a file; it ends pykernel's options: every argument after it is the code's (sys.argv[1:]), as with python3.")
    var code: String?

    @Argument(help: "The Python file to run (- or none when standard input is not a terminal: read the program from it).")
    var file: String?

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the code, in sys.argv[1:].")
    var arguments: [String] = []

    @Option(help: "A virtual environment whose packages the code can import (default: $VIRTUAL_ENV when it is one; python3 ignores another).")
    var venv: String?

    // `.unconditional`: `-1` is the value (refused by validate()), not an unknown option.
    @Option(parsing: .unconditional, help: "Stop the code after this many seconds (0: never).")
    var timeout: Double = 0

    func validate() throws {
        // python3 alone reads its program from standard input, or starts its interactive prompt
        // when that is a terminal, which this command does not have.
        guard code != nil || file != nil || isatty(STDIN_FILENO) == 0 else {
            throw ValidationError("Give a FILE to run, or -c CODE (standard input is a terminal: pykernel run has no interactive prompt).")
        }
        guard !timeout.isNaN else { throw ValidationError("--timeout must be a number of seconds.") }
        guard timeout >= 0 else { throw ValidationError("--timeout must not be negative.") }
        try ServerOptions.validateVirtualEnvironment(venv)
    }

    /// Whether the program is standard input (`-`, or no FILE and no `-c`).
    private var readsStandardInput: Bool { code == nil && (file == nil || file == "-") }

    func run() async throws {
        // A signal sent to the process (Ctrl-C) goes to the program's thread, as to python3's.
        MainThreadParking.park()
        let source: String
        let filename: String
        // The arguments, the program's path and the code as given (``GivenArguments``): python3
        // decodes them with `os.fsdecode`, so a byte that is not UTF-8 is `'\udcff'` there.
        let givenArguments = arguments.enumerated().map { GivenArguments.bytes(of: $1, at: GivenArguments.all.count - arguments.count + $0) }
        let givenFile = file.map { GivenArguments.bytes(of: $0, at: GivenArguments.all.count - arguments.count - 1) }
        let givenCode = GivenArguments.codeCommand?.code
        var argv: [[UInt8]]
        var path: [UInt8]?  // the absolute path of the program given as a path (python3's `__file__`)
        var contents: [UInt8]?  // a file's bytes, decoded as python3 decodes them
        var seekable = true  // read from a file python3 can seek in, not a pipe (see `KernelManager.runFile`)
        var isDirectory = false
        var isRegularFile = false
        if let code {
            // With -c, every argument after the code is the code's, as with python3.
            (source, filename, argv) = (code, "<string>", [Array("-c".utf8)] + (GivenArguments.codeCommand?.arguments ?? []))
        } else if readsStandardInput {
            // `python3 -` (or `python3` alone, its standard input not a terminal, `sys.argv`
            // `['']`): the program is standard input, read to its end (the code's own reads then
            // find end of file); tracebacks name it `<stdin>`. Its bytes are decoded as those of
            // a file (python3 parses its standard input as one).
            seekable = lseek(STDIN_FILENO, 0, SEEK_CUR) >= 0
            let data = Self.readAll(STDIN_FILENO)
            (source, filename, argv) = (String(decoding: data, as: UTF8.self), "<stdin>", [Array((file ?? "").utf8)])
            contents = data
        } else {
            let given = givenFile!
            // python3's `__file__`: the path as given, after the working directory when relative
            // (not normalized: `./x.py` is `<cwd>/./x.py` in tracebacks too).
            let absolute = given.first == UInt8(ascii: "/")
                ? given : (StartDirectory.bytes ?? Array(FileManager.default.currentDirectoryPath.utf8)) + Array("/".utf8) + given
            path = absolute
            let cPath = given.map { CChar(bitPattern: $0) } + [0]
            var status = stat()
            let found = stat(cPath, &status) == 0
            isDirectory = found && status.st_mode & S_IFMT == S_IFDIR
            isRegularFile = found && status.st_mode & S_IFMT == S_IFREG
            filename = String(decoding: absolute, as: UTF8.self)
            argv = [given]
            // A directory is read by runpy (below); a file here, whatever python3 makes of it.
            if isDirectory {
                source = ""
            } else {
                // Read to its end as python3 reads it: a named pipe or `<(...)` too.
                let descriptor = open(cPath, O_RDONLY | O_CLOEXEC)
                guard descriptor >= 0 else { try Self.refuse(absolute, errorNumber: errno) }
                seekable = lseek(descriptor, 0, SEEK_CUR) >= 0
                let data = Self.readAll(descriptor)
                close(descriptor)
                source = String(decoding: data, as: UTF8.self)
                contents = data
            }
        }
        argv += givenArguments
        // What python3 sets up before it runs anything: SIGPIPE and SIGXFSZ ignored (a write to a
        // closed pipe raises BrokenPipeError; subprocess puts them back for its children).
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        let interruptsIgnored = SignalDisposition.isIgnored(SIGINT)
        // The signals Swift's crash backtracer takes: a crash (a segfault in ctypes) or SIGQUIT
        // ends the program with the signal and nothing printed, as python3 does. One that came
        // ignored stays so, as python3 leaves it (SIGQUIT in a background job of a shell): the
        // backtracer installs its handler only over the default action, so it is still SIG_IGN.
        for crash in [SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV] where !SignalDisposition.isIgnored(crash) {
            signal(crash, SIG_DFL)
        }
        // The program owns the process: CPython's own streams on descriptors 0, 1 and 2, uncaptured.
        var configuration = KernelConfiguration(captureFileDescriptors: false, guardsProcessExit: false, usesProcessStandardStreams: true)
        // `--venv` must be a virtual environment (validated). `$VIRTUAL_ENV` is used when it is one,
        // as an activated environment's python3 would be its own; another is ignored, as python3
        // ignores the variable (unlike `serve` and `mcp`, which refuse it).
        configuration.virtualEnvironment = venv ?? ServerOptions.inheritedVirtualEnvironment.flatMap {
            ServerOptions.isVirtualEnvironment($0) ? $0 : nil
        }
        // python3 logs nothing: only the engine's critical failures are shown.
        var logger = Logger(label: "pykernel.engine")
        logger.logLevel = .critical
        let manager = try await KernelManager.start(configuration, logger: logger)
        if let givenCode, String(validating: givenCode, as: UTF8.self) == nil {
            try await Self.refuseUndecodable(givenCode, manager: manager)
        }
        // How python3 runs the path it was given: by runpy (a directory or zip file, whose
        // `__main__` module it runs), as compiled code (a `.pyc`) or as source.
        // (python3 looks at the first bytes of a file it can seek in, for a `.pyc`'s magic number.)
        var program = ProgramKind.source
        if let path {
            program = try await Self.kind(of: path, start: isRegularFile ? Array(contents?.prefix(2) ?? []) : [], manager: manager)
        }
        if let path, isDirectory, program != .module {
            try Self.refuse(path, errorNumber: EISDIR)  // no importer takes it (sys.path_hooks changed)
        }
        let context = try manager.createContext()
        // What python3 sets up for the main module: sys.argv, __file__, and the script's directory
        // (symbolic links resolved) first on sys.path instead of the working directory (no names
        // leak into the code); with PYTHONSAFEPATH (`sys.flags.safe_path`) neither: the
        // runtime's '' comes off (a directory or zip file is still put there, as python3 does).
        var preamble = "__import__('sys').argv = \(Self.fileSystemList(argv))\n"
        // python3's SIGINT handler: Ctrl-C (or os.kill) raises KeyboardInterrupt in the program,
        // whose own signal.signal(SIGINT, ...) then replaces it; not when SIGINT came ignored (a
        // background job of a shell), as python3 leaves it then. (Not last: a cell's last
        // expression would become `_`.)
        if !interruptsIgnored {
            preamble += "__import__('signal').signal(2, __import__('signal').default_int_handler)\n"
        }
        // sys.orig_argv: how python3 itself was called (its path, then its own arguments as given:
        // `-cCODE` as one, the `--` before a FILE too).
        let codeOption = GivenArguments.codeCommand?.attached == true ? "'-c' + " : "'-c', "
        preamble += "__import__('sys').orig_argv = [__import__('sys').executable, "
            + (code != nil ? "\(codeOption)\(Self.pythonString(source)), " : "") + (GivenArguments.programFollowsTerminator ? "'--', " : "")
            + "*__import__('sys').argv[\(code != nil || file == nil ? 1 : 0):]]\n"
        if readsStandardInput {
            // What python3 leaves in the namespace of a program read from standard input.
            preamble += "globals()['__file__'] = '<stdin>'\n"
            preamble += "globals()['__cached__'] = None\n"
            preamble += "globals()['__loader__'] = __import__('_frozen_importlib').BuiltinImporter\n"
        } else if program == .module {
            // python3 puts the path itself first on sys.path, where runpy finds `__main__` (which
            // gets its `__file__`, `__loader__`, `__spec__` and `__cached__` from runpy).
            preamble += "globals()['__loader__'] = __import__('_frozen_importlib').BuiltinImporter\n"
            preamble += "__import__('sys').path[0] = \(Self.fileSystemList([path!])).pop()\n"
        } else if let path {
            preamble += "globals()['__file__'] = \(Self.fileSystemList([path])).pop()\n"
            // What python3 leaves in a script's namespace: no cached bytecode, its loader (a
            // compiled file's has no source).
            preamble += "globals()['__cached__'] = None\n"
            let loader = program == .compiled ? "SourcelessFileLoader" : "SourceFileLoader"
            preamble += "globals()['__loader__'] = __import__('importlib.machinery').machinery.\(loader)('__main__', __file__)\n"
        } else {
            preamble += "globals()['__loader__'] = __import__('_frozen_importlib').BuiltinImporter\n"
        }
        if program != .module {
            preamble += "if __import__('sys').flags.safe_path: del __import__('sys').path[0]\n"
            if let given = givenFile, path != nil {
                preamble += "else: __import__('sys').path[0] = \(Self.fileSystemList([Self.scriptDirectory(given)])).pop()\n"
            }
        }
        for name in StandardDescriptors.closedAtStart {
            preamble += "__import__('sys').\(name) = __import__('sys').__\(name)__ = None\n"
        }
        _ = try await manager.run(preamble, in: context.id).result()
        if program == .module {
            // No `__main__` there: python3's message after its name (ours), and its status.
            let found = try await manager.run("__import__('pykernel_runtime').find_main_module()", in: context.id).result()
            if let error = found.error {
                if error.name == "ImportError" {
                    Self.write("\(CommandLine.arguments[0]): \(error.value)\n", to: STDERR_FILENO)
                    throw ExitCode(1)
                }
                throw ExitCode(Self.outcome(found).status)
            }
        }
        // As a run's `timeout` on the wire: past about 30 years (infinity included) is none, where
        // `.seconds(1e300)` overflowed a `Duration` (the program died of SIGILL).
        let limit = try InputValidation.timeout(seconds: timeout, field: "--timeout")
        // The engine has made its descriptors: the program's first one is 3, as under python3.
        LowDescriptors.release()
        // The timeout counts from here, for the program and for its end (one deadline).
        let programStart = ContinuousClock.now
        let execution = switch (program, contents) {
        case (.module, _): try manager.runMainModule(filename: filename, in: context.id, timeout: limit)
        case (.compiled, let contents?): try manager.runCompiledFile(contents, filename: filename, in: context.id, timeout: limit)
        case (_, let contents?) where path != nil: try manager.runFile(contents, path: path!, seekable: seekable, in: context.id, timeout: limit)
        case (_, let contents?): try manager.runFile(contents, filename: filename, seekable: seekable, in: context.id, timeout: limit)
        case (_, nil): try manager.run(source, in: context.id, timeout: limit, filename: filename)
        }
        var outcome = Outcome(status: 0, interrupted: false)
        var timedOut = false
        for try await event in execution {
            switch event {
            case .output(let chunk):
                Self.write(chunk.text, to: chunk.stream == .stdout ? STDOUT_FILENO : STDERR_FILENO)
            case .result, .inputRequest:
                break  // files never get a main result, and there is no `display()` (as under python3); stdin is read directly
            case .completed(let result):
                outcome = Self.outcome(result)
                timedOut = result.status == .timeout
            }
        }
        // Then, as python3 before it exits: threads that are not daemons, atexit handlers, the
        // program's objects freed (their `__del__`, files left open flushed), under the same
        // deadline. Not after code that did not stop within the grace period: it still holds the
        // interpreter, and the program ends now.
        let end: Result<Execution, KernelError> = Result { () throws(KernelError) in
            try manager.endProgram(in: context.id, timeout: limit, since: programStart, timedOut: timedOut)
        }
        if timedOut, case .failure(let error) = end, error.code == .interpreterBusy {
            throw ExitCode(outcome.status)
        }
        for try await event in try end.get() {
            switch event {
            case .output(let chunk):
                Self.write(chunk.text, to: chunk.stream == .stdout ? STDOUT_FILENO : STDERR_FILENO)
            case .completed(let result) where result.status == .timeout:
                // Stopped by the timeout: its `TimeoutError` was reported where it was raised (as
                // python3 reports what it ignores at exit); one that did not stop within the grace
                // period is said here, as for the program's code. The status is a timeout's.
                if let error = result.error, error.traceback != Self.stopTraceback(of: error) {
                    Self.write(error.traceback, to: STDERR_FILENO)
                }
                outcome.status = 1
            case .completed(let result) where result.error != nil:
                outcome.status = 120  // sys.stdout could not be flushed: python3's status then
            case .completed, .result, .inputRequest:
                break
            }
        }
        if outcome.interrupted {
            // Like python3: die of SIGINT, so the parent sees the interrupt (status 130 in a shell).
            // When the program's thread blocks SIGINT (no other thread takes it, as in python3) it
            // stays pending, and the status is python3's then: 128 + SIGINT.
            signal(SIGINT, SIG_DFL)
            kill(getpid(), SIGINT)
            throw ExitCode(128 + SIGINT)
        }
        throw ExitCode(outcome.status)
    }

    /// The one line of a stop's record (`TimeoutError: execution exceeded the 0.5 s timeout`), which
    /// the code it was raised in reported already; the record of a run that did not stop says more.
    private static func stopTraceback(of error: ErrorRecord) -> String {
        "\(error.name): \(error.value)\n"
    }

    /// How python3 runs a path given as its program (see the runtime's `program_kind`).
    private enum ProgramKind {
        /// runpy runs the `__main__` module it finds there (a directory, a zip file).
        case module
        /// A `.pyc`: its code is read from the file's bytes.
        case compiled
        /// Source, compiled from the file's bytes.
        case source
    }

    /// How python3 runs `path`, which starts with the bytes `start`: asked of the embedded Python,
    /// in a context of its own deleted afterwards (the answer is the value of its last expression),
    /// since what takes a path (`sys.path_hooks`) and a compiled file's magic number are Python's.
    private static func kind(of path: [UInt8], start: [UInt8], manager: KernelManager) async throws -> ProgramKind {
        let asking = try manager.createContext()
        defer { try? manager.deleteContext(asking.id) }
        let question = "__import__('pykernel_runtime').program_kind(\(fileSystemList([path])).pop(), bytes(\(start)))"
        let answer = try await manager.run(question, in: asking.id).result()
        switch answer.mainResult?.text {
        case "'module'": return .module
        case "'compiled'": return .compiled
        default: return .source
        }
    }

    /// Says what python3 says when it cannot open the file it was given (after its own name) and
    /// exits with its status, 2.
    /// (python3 shows the path as `repr()` shows it: a byte that is not UTF-8 as `\udcff`.)
    private static func refuse(_ absolute: [UInt8], errorNumber: Int32) throws -> Never {
        write("\(CommandLine.arguments[0]): can't open file '\(surrogateEscapes(absolute))': [Errno \(errorNumber)] \(String(cString: strerror(errorNumber)))\n",
              to: STDERR_FILENO)
        throw ExitCode(2)
    }

    /// Refuses `-c` code that is not UTF-8 as python3 does, when python3 would: it decodes the code
    /// as its arguments (`os.fsdecode`), then cannot encode the lone surrogates (in a UTF-8 locale)
    /// to compile it, says so, and exits with status 1 before running anything. The error is asked
    /// of the embedded Python, in a context of its own deleted afterwards (where the code decodes,
    /// in another locale, it runs as Swift read it).
    private static func refuseUndecodable(_ code: [UInt8], manager: KernelManager) async throws {
        let asking = try manager.createContext()
        defer { try? manager.deleteContext(asking.id) }
        let answer = try await manager.run("\(fileSystemList([code])).pop().encode()", in: asking.id).result()
        guard let error = answer.error else { return }
        write("Unable to decode the command from the command line:\n\(error.name): \(error.value)\n", to: STDERR_FILENO)
        throw ExitCode(1)
    }

    /// `bytes` as text, each byte that is not part of UTF-8 as its lone surrogate's escape (`\udcff`),
    /// as `repr()` shows the name `os.fsdecode` made of them.
    private static func surrogateEscapes(_ bytes: [UInt8]) -> String {
        var text = ""
        var rest = bytes[...]
        while !rest.isEmpty {
            // The longest start that is UTF-8, then the byte that is not.
            var valid = rest.endIndex
            while valid > rest.startIndex, String(validating: rest[..<valid], as: UTF8.self) == nil { valid -= 1 }
            text += String(decoding: rest[..<valid], as: UTF8.self)
            guard valid < rest.endIndex else { break }
            text += String(format: "\\u%04x", 0xDC00 + Int(rest[valid]))
            rest = rest[(valid + 1)...]
        }
        return text
    }

    /// Writes all of `text` to a descriptor; an error (a closed pipe) drops the rest, as the
    /// program's own writes there would have failed too.
    private static func write(_ text: String, to descriptor: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Every byte left to read on a descriptor (an error ends the reading, as end of file).
    private static func readAll(_ descriptor: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return bytes }
            bytes += chunk[..<count]
        }
    }

    /// How the program ended: the status python3 would exit with, and whether it was interrupted.
    private struct Outcome {
        var status: Int32
        var interrupted: Bool
    }

    /// The directory python3 puts first on `sys.path` for a script: its real path's directory.
    private static func scriptDirectory(_ path: [UInt8]) -> [UInt8] {
        let resolved = realpath(path.map { CChar(bitPattern: $0) } + [0], nil).map { pointer in
            defer { free(pointer) }
            return Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
        } ?? Array(URL(fileURLWithPath: String(decoding: path, as: UTF8.self)).standardizedFileURL.path.utf8)
        guard let slash = resolved.lastIndex(of: UInt8(ascii: "/")) else { return Array(".".utf8) }
        return slash == 0 ? Array("/".utf8) : Array(resolved[..<slash])
    }

    /// A Python expression of the list of the `str`s python3 makes of paths or arguments given as
    /// bytes (`os.fsdecode`: in a UTF-8 locale, a byte that is not UTF-8 as `'\udcff'`).
    private static func fileSystemList(_ items: [[UInt8]]) -> String {
        "list(map(__import__('os').fsdecode, [" + items.map(pythonBytes).joined(separator: ", ") + "]))"
    }

    /// A Python `bytes` literal.
    private static func pythonBytes(_ bytes: [UInt8]) -> String {
        var literal = "b'"
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): literal += "\\\\"
            case UInt8(ascii: "'"): literal += "\\'"
            case 0x20..<0x7F: literal.unicodeScalars.append(Unicode.Scalar(byte))
            default: literal += "\\x" + String(format: "%02x", byte)
            }
        }
        return literal + "'"
    }

    private static func pythonString(_ text: String) -> String {
        var literal = "'"
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": literal += "\\\\"
            case "'": literal += "\\'"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: literal += "\\x" + String(format: "%02x", scalar.value)
            default: literal.unicodeScalars.append(scalar)
            }
        }
        return literal + "'"
    }

    /// What `python3 FILE.py` would exit with, after printing the record's traceback (a file's
    /// syntax error: the program's own `sys.excepthook` printed any other exception, and the
    /// engine the code of a `SystemExit`, on `sys.stderr`). A `SystemExit` (any subclass, or one
    /// the hook raised) has the status the engine took from its `code` as python3 takes it.
    private static func outcome(_ result: ExecutionResult) -> Outcome {
        guard let error = result.error else { return Outcome(status: 0, interrupted: false) }
        if let status = error.exitStatus {
            return Outcome(status: status, interrupted: false)
        }
        write(error.traceback, to: STDERR_FILENO)
        return Outcome(status: 1, interrupted: error.name == "KeyboardInterrupt")
    }
}

/// `pykernel`'s command line as it was given, in bytes, which need not be UTF-8:
/// `CommandLine.arguments`, and so every value ArgumentParser parsed, has U+FFFD where they are
/// not, and python3 keeps them (`os.fsdecode`: `'\udce9'`). `pykernel run` takes each value's
/// bytes back from where it was parsed.
enum GivenArguments {
    /// Every argument's bytes, the program's path first.
    static let all: [[UInt8]] = (0..<Int(CommandLine.argc)).map { index in
        CommandLine.unsafeArgv[index].map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
    }

    /// The bytes of `value`, parsed from the argument at `index`: that argument's when Swift reads
    /// it as `value`, else (it was parsed from another) the UTF-8 of `value`.
    static func bytes(of value: String, at index: Int) -> [UInt8] {
        all.indices.contains(index) && String(decoding: all[index], as: UTF8.self) == value ? all[index] : Array(value.utf8)
    }

    /// The arguments ArgumentParser parses (the program's path left out): all of them but, after
    /// `pykernel run ... -c CODE`, the code's own (which python3 never reads as its options), and
    /// an attached `-cCODE` given as `-c CODE`.
    static let parsedArguments: [String] = {
        let given = Array(CommandLine.arguments.dropFirst())
        guard case .code(let index, let attached) = runOptionsEnd else { return given }
        let code = attached ? String(CommandLine.arguments[index].dropFirst(2)) : CommandLine.arguments[index + 1]
        return Array(CommandLine.arguments[1..<index]) + ["-c", code]
    }()

    /// `pykernel run -c CODE ARGS...`: the bytes of the code and of each of its arguments (python3's
    /// `sys.argv[1:]`, whatever they look like), and whether the code was attached (`-cCODE`);
    /// `nil` without `-c`.
    static let codeCommand: (code: [UInt8], arguments: [[UInt8]], attached: Bool)? = {
        guard case .code(let index, let attached) = runOptionsEnd else { return nil }
        let rest = attached ? index + 1 : index + 2
        return (attached ? Array(all[index].dropFirst(2)) : all[index + 1], Array(all[rest...]), attached)
    }()

    /// Whether `pykernel run`'s program (a FILE, `-`) follows a `--`, which python3 keeps in
    /// `sys.orig_argv`.
    static var programFollowsTerminator: Bool {
        if case .terminator = runOptionsEnd { return true }
        return false
    }

    /// Where `pykernel run`'s own options end, as python3's do: at `-c CODE` (or `-cCODE`), at `--`,
    /// or at the program; `nil` for another command, or when none of them comes (`-c` without
    /// its code: ArgumentParser says so).
    private static let runOptionsEnd: RunOptionsEnd? = {
        guard all.count > 2, all[1] == Array(Run._commandName.utf8) else { return nil }
        var index = 2
        while index < all.count {
            let argument = String(decoding: all[index], as: UTF8.self)
            switch argument {
            case "-c": return index + 1 < all.count ? .code(index: index, attached: false) : nil
            case "--": return .terminator
            case "-": return .program
            case "--venv", "--timeout": index += 2  // and their value
            case _ where argument.hasPrefix("-c"): return .code(index: index, attached: true)
            case _ where argument.hasPrefix("-"): index += 1  // another option of pykernel run's (or one it refuses)
            default: return .program
            }
        }
        return nil
    }()

    /// How `pykernel run`'s own options end (``runOptionsEnd``).
    private enum RunOptionsEnd {
        /// `-c` at this index of ``all``, its code the next argument (or the rest of this one, attached).
        case code(index: Int, attached: Bool)
        /// `--`, a FILE after it.
        case terminator
        /// The program: a FILE, or `-`.
        case program
    }
}

/// The standard descriptors (0, 1, 2) that were closed when `pykernel` started.
enum StandardDescriptors {
    /// The names of the `sys` streams (`stdin`, `stdout`, `stderr`) of the standard descriptors
    /// found closed, each then opened on /dev/null so that no descriptor opened later takes its
    /// number. Read first by main.swift, before anything opens a descriptor.
    static let closedAtStart: [String] = {
        var closed: [String] = []
        for (descriptor, name) in [(STDIN_FILENO, "stdin"), (STDOUT_FILENO, "stdout"), (STDERR_FILENO, "stderr")]
        where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            // The lowest free number: this one, as the lower ones are open by now.
            _ = open("/dev/null", descriptor == STDIN_FILENO ? O_RDONLY : O_WRONLY)
            closed.append(name)
        }
        return closed
    }()
}

/// The low descriptors (3 and up) held while the engine starts under `pykernel run`, so that
/// what the libraries under it open for good lands above them: Dispatch's epoll instance, eventfd
/// and timerfd (made as its first worker thread starts, and by its manager thread right after).
/// Released before the program runs, its first `open()` gets 3 as under python3 (the engine's
/// three are above ``ceiling``; `/proc/self/fd` still lists them).
enum LowDescriptors {
    /// The descriptors held are below it (and below half the soft limit on open files: the
    /// engine's own and those Python's start opens need room above).
    static let ceiling: Int32 = 256

    private static let held = Mutex<[Int32]>([])

    /// Takes every free descriptor from 3 to ``ceiling`` (all of them `/dev/null`). Called by
    /// main.swift before anything of Dispatch's starts, after ``StandardDescriptors`` took 0-2.
    static func hold() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let top = Int32(clamping: min(UInt64(ceiling), UInt64(limit.rlim_cur) / 2))
        var descriptors: [Int32] = []
        var next = open("/dev/null", O_RDONLY | O_CLOEXEC)
        // Each is the lowest free one: the first at `top` or past it means none is left below.
        while next >= 0 {
            guard next < top else {
                close(next)
                break
            }
            descriptors.append(next)
            next = fcntl(next, F_DUPFD_CLOEXEC, 0)
        }
        held.withLock { $0 = descriptors }
    }

    /// Closes the descriptors ``hold()`` took (nothing when none were), once Dispatch's manager
    /// thread has armed its timers (so its timerfds exist: on a starved host they could otherwise
    /// be made after the release, at 3).
    static func release() {
        KernelManager.armDispatchTimers()
        for descriptor in held.withLock({ held in defer { held = [] }; return held }) {
            close(descriptor)
        }
    }
}
