"""The `grutool` command makes torch's waiting CPU threads sleep (OMP_WAIT_POLICY=PASSIVE) unless the user chose how
they wait; it is set before torch loads, since libgomp reads it once then (grutool/threads.py)."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

# Runs `grutool ARGS` through the console script's main() in a fresh interpreter and prints, on stderr, the wait
# policy the environment held when torch was first imported (`-` if torch never was) and the one it ends with.
PROBE = textwrap.dedent("""
    import importlib.abc, os, sys
    seen = []
    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" and not seen:
                seen.append(os.environ.get("OMP_WAIT_POLICY"))
            return None
    sys.meta_path.insert(0, Hook())
    sys.argv = ["grutool", *sys.argv[1:]]
    from grutool.cli.app import main
    try:
        main()
    except SystemExit:
        pass
    print("AT-TORCH", seen[0] if seen else "-", "AT-END", os.environ.get("OMP_WAIT_POLICY"), file=sys.stderr)
""")


def probe(args, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_changes, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    line = [x for x in r.stderr.splitlines() if x.startswith("AT-TORCH")]
    assert line, r.stderr
    _, at_torch, _, at_end = line[-1].split()
    return at_torch, at_end


def test_a_command_that_loads_torch_finds_the_passive_policy_already_set():
    at_torch, at_end = probe(["shapes", "--hidden-size", "4", "--input-size", "3", "--json"])
    assert at_torch == "PASSIVE" and at_end == "PASSIVE"


@pytest.mark.parametrize("chosen", [{"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "5000"}])
def test_a_users_own_choice_is_kept(chosen):
    _, at_end = probe(["--version"], **chosen)
    assert at_end == chosen.get("OMP_WAIT_POLICY", "None")


def test_nothing_is_set_once_torch_is_loaded():
    # libgomp has read its settings by then: a variable set later would claim a policy that is not in force
    from grutool.threads import sleep_when_waiting

    import torch  # noqa: F401  (loaded in this process: the suite imports it)

    environ = {}
    assert sleep_when_waiting(environ) is False and environ == {}
