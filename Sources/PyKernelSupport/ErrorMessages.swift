/// The messages of errors that several modules raise, each in its one wording: a client sees the
/// same message for one code whichever method, kind of context (namespace or process) or front
/// answers it.
package enum ErrorMessages {
    /// `context_not_found` (-32001): no context has the ID `id`.
    package static func contextNotFound(_ id: String) -> String {
        "No context has the ID '\(id)'; it was never created or has been deleted (list the contexts to see which exist)."
    }

    /// `default_context_undeletable` (-32002).
    package static let defaultContextUndeletable = "The default context cannot be deleted; delete the contexts you created instead."

    /// `context_deleted` (-32004): the run's context `id` was deleted while the run was queued.
    package static func contextDeleted(_ id: String) -> String {
        "Context \(id) was deleted before this run could start."
    }

    /// `invalid_argument` (-32602, `data.field` `id`) of a restart of namespace context `id`: what
    /// can be done instead (`default`, which cannot be deleted, is not told to delete itself).
    package static func namespaceNotRestartable(_ id: String) -> String {
        "Only process contexts can be restarted; \(id) is a namespace context ("
            + (id == "default" ? "create a new context instead)." : "delete it and create a new one).")
    }

    /// The end of an `invalid_cwd` message about context `id`, whose working directory is gone,
    /// after "make the directory again ...": the other way out (`default`, which cannot be
    /// deleted, is not told to delete itself).
    package static func otherWayOutOfAMissingDirectory(_ id: String) -> String {
        id == "default"
            ? "or create a context with another working directory (the default context cannot be deleted)."
            : "or delete the context and create another."
    }

    /// `shutting_down` (-32005) of a run that was not started: queued when the shutdown began, or
    /// submitted after it.
    package static let runNotStarted = "The kernel manager is shutting down; the run was not started."

    /// `shutting_down` (-32005) of a context operation that needs a worker (a process context's
    /// creation or restart) once the shutdown began.
    package static let startsNoWorker = "The kernel manager is shutting down and starts no more workers."

    /// `shutting_down` (-32005) of any other call about a context of the Swift library's
    /// `KernelContexts` once it was shut down (creating, looking up, interrupting, restarting or
    /// deleting one, of either kind), and of `KernelManager`'s creation, interruption and deletion
    /// of a context after its `shutdown()`.
    package static let contextsShutDown = "The kernel manager has shut down; its contexts can no longer be created, used or deleted."

    /// The traceback of a run withdrawn before it started (its reader was cancelled while it was
    /// queued): answered `interrupted`, execution count 0, in either kind of context.
    package static let runCancelledBeforeStart = "KeyboardInterrupt: the run was cancelled before it started\n"
}
