import Glibc

/// Linux's limits on what a new program receives (`execve`), checked before a spawn so that a
/// request over them gets an error naming its parameter rather than `E2BIG` from the spawn:
///
/// - each argument and each environment entry (`NAME=value`), with its terminating NUL, is at
///   most `MAX_ARG_STRLEN`, 32 pages (131,072 bytes with 4 KiB pages);
/// - all of them together, with a pointer each, fit in about a quarter of the stack size limit
///   (`ulimit -s`; at most 6 MiB, at least 128 KiB) — known only by trying: `E2BIG`.
enum ExecLimits {
    /// The most bytes of one argument or environment entry, its terminating NUL included.
    static var maxStringBytes: Int { 32 * Int(sysconf(Int32(_SC_PAGESIZE))) }

    /// Roughly how many bytes the arguments and environment may take in all (the kernel's rule:
    /// a quarter of the stack size limit, at most 6 MiB, at least 128 KiB).
    static var approximateTotalBytes: Int {
        var limit = rlimit()
        let stack = getrlimit(__rlimit_resource_t(RLIMIT_STACK.rawValue), &limit) == 0 && limit.rlim_cur != rlim_t.max
            ? Int(clamping: limit.rlim_cur) / 4 : Int.max
        return max(min(stack, 6 << 20), 128 << 10)
    }

    /// Refuses an argument or environment entry that no program can receive.
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidArgument`` with field `env`, or the spec's
    ///   ``SpawnSpec/argumentsField`` for an argument.
    static func check(_ spec: SpawnSpec) throws(ProcessAPIError) {
        let most = maxStringBytes
        for (name, value) in spec.environment where name.utf8.count + 1 + value.utf8.count + 1 > most {
            throw ProcessAPIError(
                .invalidArgument,
                "The environment variable \(name) is \(name.utf8.count + 1 + value.utf8.count) bytes (NAME=value); "
                    + "Linux passes at most \(most - 1) bytes per variable to a program. Pass larger data in a file.",
                field: "env")
        }
        if let long = spec.arguments.first(where: { $0.utf8.count + 1 > most }) {
            throw ProcessAPIError(
                .invalidArgument,
                "An argument is \(long.utf8.count) bytes; Linux passes at most \(most - 1) bytes per argument to a program. "
                    + "Pass larger data in a file or on stdin.",
                field: spec.argumentsField)
        }
    }

    /// The error for a spawn that failed with `E2BIG` although every string fits (``check(_:)``):
    /// the arguments and environment together are too large. It names whichever of the two is larger.
    static func tooLarge(_ spec: SpawnSpec) -> ProcessAPIError {
        let arguments = spec.arguments.reduce(0) { $0 + $1.utf8.count + 1 }
        let environment = spec.environment.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 }
        return ProcessAPIError(
            .invalidArgument,
            "The arguments (\(arguments) bytes) and environment (\(environment) bytes, \(spec.environment.count) variables) "
                + "are more than Linux lets a program receive: about \(approximateTotalBytes) bytes in all, a quarter of "
                + "the stack size limit (E2BIG). Pass larger data in a file or on stdin.",
            field: arguments > environment ? spec.argumentsField : "env")
    }
}
