"""Start-up: what a run imports, and the optimizers that keep torch._dynamo
(about 2 s) out of a run that never compiles."""

import subprocess
import sys
from importlib import import_module
from pathlib import Path

import tomllib
import torch
from conftest import TINY

from gan_cli.optimizers import without_dynamo_import

# Each optimizer the configs name, with the options they pass.
OPTIMIZERS = {
    "rmsprop": "torch.optim.RMSprop(params, lr=1e-2, foreach=True)",
    "adam_fused": "torch.optim.Adam(params, lr=1e-2, betas=(0.5, 0.999), fused=True)",
    "adam": "torch.optim.Adam(params, lr=1e-2, betas=(0.5, 0.9))",
    "sgd": "torch.optim.SGD(params, lr=1e-2, momentum=0.5, foreach=True)",
}

TRAIN_FIVE_STEPS = """
import sys, torch
from gan_cli.optimizers import without_dynamo_import
if sys.argv[1] == "eager_only":
    names = ("RMSprop", "Adam", "SGD")
    torch.optim = type("optim", (), {n: without_dynamo_import(getattr(torch.optim, n)) for n in names})
for make in sys.argv[2:]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    params = net.parameters()
    opt = eval(make)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(7, 5)).pow(2).mean().backward()
        opt.step()
        opt.load_state_dict(opt.state_dict())  # a checkpoint's round trip between steps
    print(make, [v for v in torch.cat([p.flatten() for p in net.parameters()]).tolist()],
          [p.float().sum().item() for s in opt.state_dict()["state"].values() for p in s.values()])
print("torch._dynamo" in sys.modules)
"""


def _train(mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_FIVE_STEPS, mode, *OPTIMIZERS.values()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-800:]
    return done.stdout.strip().splitlines()


def test_optimizers_without_the_dynamo_import_update_bit_for_bit_as_torchs():
    *ours, dynamo = _train("eager_only")
    *torchs, torch_dynamo = _train("torch")
    assert len(ours) == len(OPTIMIZERS) and ours == torchs  # weights and state, every float's repr
    assert (dynamo, torch_dynamo) == ("False", "True")


def test_once_dynamo_is_imported_the_optimizer_is_torchs_own(monkeypatch):
    RMSprop = without_dynamo_import(torch.optim.RMSprop)
    assert issubclass(RMSprop, torch.optim.RMSprop) and without_dynamo_import(RMSprop) is RMSprop
    calls = []
    monkeypatch.setattr(torch.optim.RMSprop, "zero_grad", lambda self, set_to_none=True: calls.append(1))
    opt = RMSprop([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    monkeypatch.setitem(sys.modules, "torch._dynamo", sys.modules.get("torch._dynamo", object()))
    opt.zero_grad()
    assert calls == [1]


def test_step_hooks_run_once_per_step_with_or_without_dynamo(monkeypatch):
    torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(2))])  # torch hooks RMSprop's own step
    weight = torch.nn.Parameter(torch.ones(2))
    opt = without_dynamo_import(torch.optim.RMSprop)([weight], lr=0.1)
    seen = []
    opt.register_step_post_hook(lambda *args: seen.append(1))
    weight.grad = torch.ones(2)
    opt.step()
    monkeypatch.setitem(sys.modules, "torch._dynamo", sys.modules.get("torch._dynamo", object()))
    opt.step()
    assert len(seen) == 2 and weight.detach().lt(1).all()


def test_a_run_imports_neither_torchvision_nor_dynamo(tmp_path):
    # Together about 4 s of start-up on a 2-core machine: torchvision is for
    # downloads, torch._dynamo for train.compile.
    code = (
        "import sys; from gan_cli.config.compose import compose_config; from gan_cli.run.runner import run; "
        f"run(compose_config({[*TINY, 'train.steps=4', 'train.sample_every=2', f'run_dir={tmp_path}']!r})); "
        "print(sorted({m.split('.')[0] if m.startswith('torchvision') else m for m in sys.modules "
        "if m.startswith(('torchvision', 'torch._dynamo'))}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_2.png", "step_4.png"]


# A console script built as pyproject builds them, ending as `code` says; a
# module-level object reports the interpreter's teardown when it is freed.
ENDING = """
import atexit, logging, sys, threading, time
from gan_cli.errors import UserError, command

class Teardown:
    def __del__(self):
        sys.__stderr__.write("torn down\\n")

torn = Teardown()
logging.basicConfig(filename=sys.argv[2], level=logging.INFO)
atexit.register(lambda: open(sys.argv[3], "w").write("exit handler ran"))

@command("gan-demo")
def main():
    code = sys.argv[1]
    print("\\n".join(f"line {i}" for i in range(20000)))  # stdout is a pipe: buffered
    logging.info("logged last")
    if code == "thread":
        threading.Thread(target=lambda: (time.sleep(0.5), print("thread done"))).start()
    elif code == "bad":
        raise UserError("no such thing")
    elif code == "text":
        sys.exit("stopped: reason")
    elif code != "none":
        sys.exit(int(code))

main.script()
"""


def _end(code: str, tmp_path):
    log, flag = tmp_path / "demo.log", tmp_path / "flag"
    done = subprocess.run(
        [sys.executable, "-c", ENDING, code, str(log), str(flag)], capture_output=True, text=True, timeout=60
    )
    return done, log.read_text(), flag.read_text()


def test_a_console_script_ends_at_once_with_its_output_flushed_and_its_exit_status(tmp_path):
    for code, status, stderr in [
        ("none", 0, ""),
        ("0", 0, ""),
        ("3", 3, ""),
        ("bad", 2, "gan-demo: error: no such thing\n"),
        ("text", 1, "stopped: reason\n"),
    ]:
        done, log, flag = _end(code, tmp_path)
        assert (done.returncode, done.stderr) == (status, stderr), code  # no "torn down": no teardown
        lines = done.stdout.splitlines()
        assert len(lines) == 20000 and lines[-1] == "line 19999", code
        assert "logged last" in log and flag == "exit handler ran", code


def test_a_console_script_waits_for_a_running_thread_and_ends_as_usual(tmp_path):
    done, log, flag = _end("thread", tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "thread done"
    assert "torn down" in done.stderr  # the interpreter's own ending
    assert "logged last" in log and flag == "exit handler ran"


def test_the_installed_console_scripts_end_at_once():
    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, attrs = target.split(":")
        function, attr = attrs.split(".")
        assert attr == "script", name
        main = getattr(import_module(module), function)
        assert main.script.__wrapped__ is main, name
