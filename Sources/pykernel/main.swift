import ArgumentParser
import Dispatch
import Foundation
import PyKernelIsolation
import PyKernelSupport

// What a worker's or fork server's spawner set for its runtime alone (read as it started), out of
// the environment before Python copies it: user code and its subprocesses never see it.
WorkerEnvironment.forget()
// Before anything changes directory: the bytes of the one the process started in (its text may
// not be UTF-8, see `StartDirectory`).
_ = StartDirectory.bytes
// A synchronous entry first: the fork server must start before anything makes this process
// multithreaded (Swift concurrency, Dispatch), so that it can fork. Everything else is
// ArgumentParser's asynchronous command, as with `@main`.
if CommandLine.arguments.count > 1, CommandLine.arguments[1] == ForkServerCommand.name {
    ForkServerCommand.main(Array(CommandLine.arguments.dropFirst(2)))
}
// Before Dispatch opens its first descriptor: the standard descriptors the caller left closed.
_ = StandardDescriptors.closedAtStart
// `pykernel run`: the low numbers after them, so that the engine's descriptors land above those the
// program will open (released before it runs).
if CommandLine.arguments.count > 1, CommandLine.arguments[1] == Run._commandName {
    LowDescriptors.hold()
    // Its main thread takes no signal once the program runs (see `MainThreadParking`).
    MainThreadParking.noteMainThread()
}
Task {
    // `pykernel run -c CODE ARGS...`: the code's arguments are its own, not options to parse.
    await PyKernelCommand.main(GivenArguments.parsedArguments)
    exit(0)
}
dispatchMain()
