"""Optimizers without torch.optim: bit-identity with torch.optim.SGD / AdamW on CPU,
parameter groups from a spec, and their errors."""

import io

import pytest
import torch

from ncrepro.models import build_model
from ncrepro.train.optim import SGD, AdamW, build_optimizer, param_groups


def net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    model.add_module("unused", torch.nn.Linear(2, 2))  # never gets a gradient
    return model


def groups_of(model, hyper):
    """Two groups: the first Linear, and the rest (incl. the unused layer)."""
    params = list(model.parameters())
    return [{"params": params[:2], **hyper[0]}, {"params": params[2:], **hyper[1]}]


def round_trip(state: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as the resume state goes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def run_both(make_ours, make_ref, hyper, steps=7, resume_at=3):
    """Train two copies of `net()` side by side, changing each group's LR every step and
    moving our optimizer's state into a fresh one at `resume_at`; return both nets."""
    ours_net, ref_net = net(), net()
    ours = make_ours(groups_of(ours_net, hyper))
    ref = make_ref(groups_of(ref_net, hyper))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for step in range(steps):
        for opt, model in ((ours, ours_net), (ref, ref_net)):
            for i, group in enumerate(opt.param_groups):
                group["lr"] = hyper[i]["lr"] / (1 + step)
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model[:3](x), y).backward()
            opt.step()
        if step == resume_at:
            state = round_trip(ours.state_dict())
            ours = make_ours(groups_of(ours_net, [{"lr": 9.0}, {"lr": 9.0}]))
            ours.load_state_dict(state)
    return ours, ours_net, ref_net


def assert_same(a: torch.nn.Module, b: torch.nn.Module):
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch_optim_bit_for_bit(momentum):
    """With two groups (own lr and weight decay), LR changes between steps, a parameter
    without gradient and a state_dict round trip into a fresh optimizer."""
    hyper = [
        {"lr": 0.1, "weight_decay": 5e-4, "momentum": momentum},
        {"lr": 0.03, "weight_decay": 0.0, "momentum": momentum},
    ]
    ours, ours_net, ref_net = run_both(
        lambda g: SGD(g, lr=1.0), lambda g: torch.optim.SGD(g, lr=1.0), hyper
    )
    assert_same(ours_net, ref_net)
    assert ours.state[-1] is None and ours.state[-2] is None  # the unused layer never moved
    assert (ours.state[0] is None) == (momentum == 0)


@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-8), ((0.8, 0.95), 1e-6)])
def test_adamw_matches_torch_optim_bit_for_bit(betas, eps):
    """As for SGD: decoupled weight decay in one group only, custom betas and eps."""
    hyper = [{"lr": 3e-3, "weight_decay": 0.1}, {"lr": 1e-2, "weight_decay": 0.0}]
    ours, ours_net, ref_net = run_both(
        lambda g: AdamW(g, lr=1.0, betas=betas, eps=eps),
        lambda g: torch.optim.AdamW(g, lr=1.0, betas=betas, eps=eps),
        hyper,
    )
    assert_same(ours_net, ref_net)
    assert ours.state[0]["step"] == 7 and ours.state[-1] is None


def test_adamw_first_step_closed_form():
    """Step 1 of Adam moves every weight by lr · g / (|g| + eps') (bias corrections cancel
    m and v), after the decoupled decay p ← p · (1 − lr · wd)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = AdamW([p], lr=0.1, weight_decay=0.5, eps=0.0)
    p.grad = torch.tensor([0.3, -4.0, 2.0])
    opt.step()
    expected = torch.tensor([1.0, -2.0, 0.5]) * (1 - 0.1 * 0.5) - 0.1 * torch.tensor([1, -1, 1])
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7)


def test_optimizer_state_checks():
    model = net()
    sgd = SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="for 'sgd', not 'adamw'"):
        AdamW(model.parameters(), lr=0.1).load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="this optimizer has 1 groups, 4 parameters"):
        SGD(list(model.parameters())[:4], lr=0.1).load_state_dict(sgd.state_dict())


# ------------------------------------------------------------------- groups from a spec
def spec(**training):
    t = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "cosine"}
    return {"lr": 0.1, "training": {**t, **training}}


def mlp_with_head():
    head = {"kind": "linear", "width": 3}
    return build_model(
        "mlp", num_classes=4, in_channels=1, image_size=4, depth=1, hidden=8, head=head
    )


def test_param_groups_split_by_name_prefix():
    model = mlp_with_head()
    names = [n for n, _ in model.named_parameters()]
    assert names == [
        "body.1.weight",
        "body.1.bias",
        "embedding.0.weight",
        "embedding.0.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    groups = param_groups(
        model,
        spec(
            param_groups=[
                {"params": ["classifier"], "lr_schedule": "constant", "name": "cls"},
                {"params": ["embedding.0.bias", "body.1.bias"], "lr": 0.5, "weight_decay": 0},
            ]
        ),
    )
    params = dict(model.named_parameters())
    assert [g["name"] for g in groups] == ["default", "cls", "embedding.0.bias+body.1.bias"]
    assert [[id(p) for p in g["params"]] for g in groups] == [
        [id(params["body.1.weight"]), id(params["embedding.0.weight"])],
        [id(params["classifier.weight"]), id(params["classifier.bias"])],
        [id(params["body.1.bias"]), id(params["embedding.0.bias"])],  # model order
    ]
    assert [(g["base_lr"], g["lr"], g["lr_schedule"], g["weight_decay"]) for g in groups] == [
        (0.1, 0.1, "cosine", 5e-4),
        (0.1, 0.1, "constant", 5e-4),
        (0.5, 0.5, "cosine", 0),
    ]


def test_one_group_without_param_groups():
    """Today's layout: one group, every parameter in model.parameters() order."""
    model = mlp_with_head()
    (group,) = param_groups(model, spec())
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]
    opt = build_optimizer(model, spec())
    assert isinstance(opt, SGD) and opt.param_groups[0]["momentum"] == 0.9
    opt = build_optimizer(model, spec(optimizer="adamw", betas=[0.5, 0.6], eps=1e-3))
    assert isinstance(opt, AdamW)
    assert opt.param_groups[0]["betas"] == (0.5, 0.6) and opt.param_groups[0]["eps"] == 1e-3
    assert opt.param_groups[0]["weight_decay"] == 5e-4


@pytest.mark.parametrize(
    "training,match",
    [
        ({"param_groups": [{"params": ["clasifier"]}]}, "matches no parameter"),
        ({"param_groups": [{"params": ["body"]}, {"params": ["body.1"]}]}, "claimed by several"),
        ({"param_groups": [{"params": ["body"], "momentum": 0}]}, "does not take momentum"),
        ({"param_groups": [{"params": ["body"], "name": "default"}]}, "names must be unique"),
        ({"param_groups": [{"params": ["body"], "lr_schedule": "linear"}]}, "unknown lr sched"),
        ({"optimizer": "adam"}, "unknown optimizer 'adam'"),
    ],
)
def test_param_group_errors(training, match):
    with pytest.raises(ValueError, match=match):
        build_optimizer(mlp_with_head(), spec(**training))
