"""Test points that only Square broke in an AutoAttack run (Linf 0.3): gradient masking, or luck?

Prints each point's clean logit margin and input-gradient size, which attacks break it in fp32 and
with the bf16 search, and what the official AutoAttack's white-box and Square attacks say. The
defaults are the shipped checkpoint and the four points Square alone broke in our AutoAttack run on it
on the 1,000-image subset (results/robust-seed-cnn/autoattack-every10). For the
augmented PGD checkpoint shipped before it (git b22fd96) the points were 1600 2780 3450.
    .venv/bin/python experiments/scripts/square_points.py [MODEL [POINT ...]]
(~1 minute; the official part needs `make test`'s dev extras)
"""

import contextlib
import io
import sys
import time

import torch

import advmnist
from advmnist.attacks import Threat, create_attack

MODEL = sys.argv[1] if len(sys.argv) > 1 else "src/advmnist/pretrained/robust-seed-cnn.safetensors"
POINTS = [int(a) for a in sys.argv[2:]] or [2730, 2770, 6460, 8110]  # broken_by == "square" in per_sample.jsonl
model, _ = advmnist.load_model(MODEL)
test = advmnist.load_mnist("test")
x, y = test.x[POINTS], test.y[POINTS]
threat = Threat("linf", 0.3)
with torch.no_grad():
    logits = model(x)
margin = logits.gather(1, y[:, None])[:, 0] - logits.scatter(1, y[:, None], -1e9).max(1).values
x_ = x.clone().requires_grad_(True)
torch.nn.functional.cross_entropy(model(x_), y, reduction="sum").backward()
print("points", POINTS, "labels", y.tolist())
print("clean logit margin", [round(m, 2) for m in margin.tolist()])
print("fp32 CE input gradient, L1", [f"{g:.2g}" for g in x_.grad.abs().sum((1, 2, 3)).tolist()])
for name, settings in [
    ("apgd-ce", {}),
    ("apgd-ce", {"restarts": 20}),
    ("apgd-dlr", {"restarts": 5}),
    ("apgd-t", {}),
    ("fab-t", {}),
    ("pgd", {"steps": 200, "restarts": 20}),
    ("square", {}),
]:
    for bf16 in (False, True):
        start = time.perf_counter()
        result = create_attack(name, bf16=bf16, **settings)(model, x, y, threat, seed=0)
        print(f"{name} {settings} bf16={bf16}: broken {result.success.tolist()} ({time.perf_counter() - start:.1f} s)")
try:
    from pyautoattack import AutoAttack as Official
except ImportError:
    raise SystemExit("pyautoattack not installed: skipping the official code") from None
for attacks in (["apgd-ce", "apgd-t", "fab-t"], ["square"]):
    official = Official(model, norm="Linf", eps=0.3, version="custom", attacks=attacks, seed=0)
    with contextlib.redirect_stdout(io.StringIO()):
        x_adv = official.run_standard_evaluation(x, y, batch_size=len(x))[0]
    with torch.no_grad():
        print(f"official {'+'.join(attacks)}: broken {(model(x_adv).argmax(1) != y).tolist()}")
