"""A sample of fidelity_generator.py's programs: `pykernel run` prints what python3.11 prints
(stdout, stderr, status), and a served context's cell shows python3.11's stdout and its stderr
with the traceback, for programs made of random parts (output in every form, warnings, threads,
finalizers, every way to end, syntax errors, source encodings). The generator itself, run by
hand with more programs and other seeds, finds the divergences the corpora then keep."""

import fidelity_generator


def _report(run_divergences, served_divergences):
    lines = []
    for program, (theirs, ours) in run_divergences[:3]:
        lines.append("run %s:\n%s\npython3: %r\npykernel: %r" % (
            program.name, program.files["prog.py"].decode("utf-8", "replace"), theirs, ours))
    for program, shown, reference in served_divergences[:3]:
        lines.append("served %s:\n%s\npython3: %r\nserved: %r" % (
            program.name, program.files["prog.py"].decode("utf-8", "replace"), reference, shown))
    return "\n\n".join(lines)


def test_generated_programs_run_and_serve_as_python3(pykernel_bin):
    programs = fidelity_generator.generate(seed=11, count=160)
    assert sum(name.startswith("syntax_") for name in (p.name for p in programs)) > 20
    run_divergences, served_divergences, served = fidelity_generator.divergences(programs, pykernel_bin)
    assert served > 20  # the served comparison is not vacuous
    assert not run_divergences and not served_divergences, _report(run_divergences, served_divergences)


def test_generated_programs_interleave_as_python3_with_stderr_on_stdout(pykernel_bin):
    programs = fidelity_generator.generate(seed=12, count=60)
    run_divergences, _, _ = fidelity_generator.divergences(programs, pykernel_bin, merged=True, served=False)
    assert not run_divergences, _report(run_divergences, [])
