"""The three test points that only Square broke in the AutoAttack run of the robust checkpoint
(results/robust-seed-cnn/autoattack-every10, Linf 0.3): gradient masking, or bf16 luck?

Prints each point's clean logit margin and input-gradient size, which attacks break it in fp32 and
with the bf16 search, and what the official AutoAttack's white-box and Square attacks say.
    .venv/bin/python scripts/square_points.py      (~1 minute; the official part needs `make test`'s dev extras)
"""

import contextlib
import io
import time

import torch

import advmnist
from advmnist.attacks import Threat, create_attack

POINTS = [1150, 2430, 3100]  # broken_by == "square" in per_sample.jsonl
model, _ = advmnist.load_model("checkpoints/robust-seed-cnn.safetensors")
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
