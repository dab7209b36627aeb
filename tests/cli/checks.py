"""What the CLI test scripts share: counted checks, a FAIL line for each one that fails, and the
summary line and exit status ctest reads. Scripts import it from their own folder."""
import sys

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)
    return cond


def done(need_some=False):
    """Prints "P passed, F failed" and exits: 1 when any failed (or, with need_some, none passed)."""
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or (need_some and not passed) else 0)
