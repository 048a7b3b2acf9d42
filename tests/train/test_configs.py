"""Every option of every config group composes; the training groups also instantiate."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scalar.core.errors import UserError
from tests.conftest import CONF, compose_train

GROUPS = {  # every config group, nested ones by their path (rl/algo, stage/validation)
    p.relative_to(CONF).as_posix(): sorted(f.stem for f in p.glob("*.yaml"))
    for p in sorted(CONF.rglob("*"))
    if p.is_dir() and any(p.glob("*.yaml"))
}
OPTIONS = [(g, o) for g, names in GROUPS.items() for o in names]
NESTED = [(g, o) for g, o in OPTIONS if "/" in g]
OWN = ["paths.output_dir=/tmp/scalar-test-run"]


def _compose(*overrides: str, hydra: bool = False):
    return compose_train([*OWN, *overrides], return_hydra_config=hydra)


def test_groups_are_what_train_yaml_names():
    defaults = OmegaConf.load(CONF / "train.yaml").defaults
    named = {next(iter(d)) for d in defaults if isinstance(d, dict) or OmegaConf.is_dict(d)}
    assert named <= set(GROUPS), named - set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group: str, option: str):
    rl = group == "reward" or group.startswith("rl/")
    extra = ["stage=rl"] if rl else []  # the reward and rl groups belong to stage=rl
    cfg = _compose(
        *extra, f"{group}={option}", hydra=group in ("hydra", "experiment", "hparams_search")
    )
    assert cfg.seed == 42
    if group in ("trainer", "logger", "callbacks", "optim", "loss", "stage", "debug"):
        # the groups this application owns resolve completely
        OmegaConf.to_container(cfg.get(group) if group != "debug" else cfg.trainer, resolve=True)


@pytest.mark.parametrize("option", ["joint", "synthetic_joint"])
def test_joined_data_configs_instantiate(option: str):
    cfg = _compose(f"data={option}")
    for split, spec in cfg.data.corpora.items():
        spec = spec[0] if OmegaConf.is_list(spec) else spec
        if "refcoco" in spec:  # the unlabeled folder reader is not joined
            reader = instantiate(spec, _convert_="all")
            assert reader.func.__name__ == "read_joint", split
            assert reader.keywords["refcoco"].func.__name__ == "read_refcoco", split
    assert type(instantiate(cfg.data)).__name__ == "SceneDataModule"


def test_every_line_of_owned_configs_is_commented():
    owned = ["train.yaml", "stage", "trainer", "logger", "callbacks", "optim", "loss",
             "experiment", "hparams_search", "debug", "hydra", "reward", "rl", "eval.yaml"]  # fmt: skip
    files = []
    for name in owned:
        path = CONF / name
        files += [path] if path.is_file() else sorted(path.rglob("*.yaml"))
    bare = []
    for f in files:
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            text = line.strip()
            if not text or text.startswith("#") or text.startswith("- ") or ":" not in text:
                continue
            key, _, value = text.partition(":")
            # keys opening a block are documented by the block's own comments
            if "#" not in text and value.strip() and not key.startswith("_"):
                bare.append(f"{f.relative_to(CONF)}:{i + 1}: {text}")
    assert not bare, "\n".join(bare)


# -------------------------------------------------------------------- trainer presets
@pytest.mark.parametrize("option", ["default", "cpu", "gpu"])
def test_single_device_trainers_instantiate(option: str):
    import lightning as L

    cfg = _compose(f"trainer={option}", "trainer.accelerator=cpu")  # no GPU needed to check
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    assert isinstance(trainer, L.Trainer)
    assert trainer.max_steps == cfg.trainer.max_steps
    from scalar.train.checkpoint import AtomicCheckpointIO

    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    want = {"default": "32-true", "cpu": "32-true", "gpu": "bf16-mixed"}[option]
    assert cfg.trainer.precision == want


def test_cpu_trainer_is_sized_for_the_ten_minute_job():
    cfg = _compose("trainer=cpu")
    h, m, s = (int(x) for x in cfg.trainer.max_time.split(":")[1:])
    assert 0 < h * 3600 + m * 60 + s <= 10 * 60
    assert cfg.trainer.accelerator == "cpu"


def test_cpu_ddp_trainer_runs_two_gloo_processes_of_one_thread_each(monkeypatch):
    from lightning.pytorch.strategies import DDPStrategy

    from scalar.train.run import cpu_threads

    cfg = _compose("trainer=cpu_ddp")
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.devices == 2
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, DDPStrategy) and strategy._process_group_backend == "gloo"
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert cpu_threads(cfg.cpu_threads, cfg.trainer) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert cpu_threads("auto", cfg.trainer) == 8
    assert cpu_threads("auto", {"accelerator": "cpu", "devices": 1}) == 16
    assert cpu_threads("auto", {"accelerator": "gpu", "devices": 2}) is None
    assert cpu_threads(3, cfg.trainer) == 3 and cpu_threads(None, cfg.trainer) is None
    with pytest.raises(UserError, match="cpu_threads"):
        cpu_threads(0, cfg.trainer)


def test_ddp_strategy_instantiates():
    from lightning.pytorch.strategies import DDPStrategy

    cfg = _compose("trainer=ddp")
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, DDPStrategy)
    assert cfg.trainer.devices == -1 and cfg.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("state_dict_type", ["sharded", "full"])
def test_fsdp_strategy_wraps_decoder_layers_and_vision_blocks(state_dict_type: str):
    from lightning.pytorch.strategies import FSDPStrategy
    from open_clip.transformer import ResidualAttentionBlock
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    cfg = _compose("trainer=fsdp", f"trainer.strategy.state_dict_type={state_dict_type}")
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy._state_dict_type == state_dict_type
    policy = strategy.kwargs["auto_wrap_policy"]
    wrapped = policy._module_classes
    assert {LlamaDecoderLayer, ResidualAttentionBlock} <= set(wrapped)
    # activation checkpointing over the same blocks
    ckpt_policy = strategy._activation_checkpointing_kwargs["auto_wrap_policy"]
    assert set(ckpt_policy._module_classes) == set(wrapped)
    assert strategy.kwargs["use_orig_params"] is True


def test_fsdp_bad_layer_name_is_a_clear_error():
    from scalar.core.errors import UserError
    from scalar.train.strategies import layer_classes

    with pytest.raises(UserError, match="nopackage"):
        layer_classes(["nopackage.Layer"])
    with pytest.raises(UserError, match="has no class Nope"):
        layer_classes(["torch.nn.Nope"])


@pytest.mark.parametrize(("option", "stage"), [("deepspeed_zero2", 2), ("deepspeed_zero3", 3)])
def test_deepspeed_presets(option: str, stage: int):
    cfg = _compose(f"trainer={option}")
    s = cfg.trainer.strategy
    assert s._target_ == "lightning.pytorch.strategies.DeepSpeedStrategy"
    assert s.stage == stage and cfg.trainer.precision == "bf16-mixed"
    if stage == 3:
        assert s.partition_activations is True
    strategy = instantiate(s)  # deepspeed is in the dev extra
    zero = strategy.config["zero_optimization"]
    assert zero["stage"] == stage and zero["reduce_bucket_size"] == s.reduce_bucket_size
    assert strategy.config["activation_checkpointing"]["partition_activations"] is (stage == 3)


# -------------------------------------------------------------------- loggers, callbacks
@pytest.mark.parametrize("option", GROUPS["logger"])
def test_loggers_instantiate(option: str, tmp_path: Path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = _compose(f"logger={option}", f"paths.output_dir={tmp_path}")
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    kinds = {type(lg) for lg in loggers}
    want = {
        "csv": {CSVLogger},
        "wandb": {WandbLogger},
        "tensorboard": {TensorBoardLogger},
        "default": {CSVLogger, WandbLogger},
        "many": {CSVLogger, WandbLogger, TensorBoardLogger},
        "none": set(),
    }[option]
    assert kinds == want
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            assert lg._wandb_init["mode"] == "offline"  # offline unless WANDB_MODE says otherwise
            assert lg._log_model is False and lg._project == "scalar"
        else:
            assert Path(lg.save_dir) == tmp_path


def test_wandb_goes_online_only_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "online")
    cfg = _compose("logger=wandb", f"paths.output_dir={tmp_path}")
    assert instantiate(cfg.logger.wandb)._wandb_init["mode"] == "online"


@pytest.mark.parametrize("option", GROUPS["callbacks"])
def test_callbacks_instantiate(option: str, tmp_path: Path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    cfg = _compose(f"callbacks={option}", f"paths.output_dir={tmp_path}")
    cbs = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    if option == "default":
        ckpt = next(c for c in cbs if isinstance(c, ModelCheckpoint))
        assert Path(ckpt.dirpath) == tmp_path / "checkpoints"
        assert ckpt.monitor == "val/rec/acc@0.5" and ckpt.mode == "max" and ckpt.save_last
        assert any(type(c).__name__ == "SigtermCheckpoint" for c in cbs)


# -------------------------------------------------------------------- optim, loss, stage
@pytest.mark.parametrize("option", GROUPS["optim"])
def test_optim_presets_build_optimizer_and_schedule(option: str):
    from scalar.train.run import build_optim

    cfg = _compose(f"optim={option}", "optim.lr=0.5")
    make_opt, make_sched = build_optim(cfg)
    w = torch.nn.Parameter(torch.ones(2, 2))
    opt = make_opt([{"params": [w]}])
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 0.5
    warm = cfg.optim.scheduler.warmup_steps
    total = warm + 100
    sched = make_sched(opt, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    if warm:
        assert lrs[0] == pytest.approx(0.5 / warm)  # linear warm-up from lr / warmup
        assert lrs[warm] == pytest.approx(0.5)
        progress = (total - 1 - warm) / (total - warm)  # cosine from the end of warm-up
        ratio = cfg.optim.scheduler.min_lr_ratio
        want = 0.5 * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
        assert lrs[-1] == pytest.approx(want)
    else:
        assert all(lr == pytest.approx(0.5) for lr in lrs)


@pytest.mark.parametrize("option", GROUPS["loss"])
def test_losses_instantiate(option: str):
    from scalar.losses import InfoNCELoss, TDistContrastiveLoss
    from scalar.losses.align import AlignLoss

    cfg = _compose(f"loss={option}", "loss.contrastive.nu=2.0" if option == "align" else "seed=42")
    loss = instantiate(cfg.loss)
    assert isinstance(loss, AlignLoss)
    want = {"align": TDistContrastiveLoss, "infonce": InfoNCELoss, "none": type(None)}[option]
    assert type(loss.contrastive) is want
    if option == "align":
        assert float(loss.contrastive.nu) == pytest.approx(
            2.0
        )  # loss.contrastive.nu reaches the kernel


def test_stage_align_targets_the_align_module():
    cfg = _compose("stage=align")
    assert cfg.stage.module._target_ == "scalar.stages.align.AlignModule"
    assert cfg.stage.monitor == "val/rec/acc@0.5"
    assert cfg.stage.module.nan_guard.policy == cfg.nan_policy


# -------------------------------------------------------------------- nested groups
@pytest.mark.parametrize(("group", "option"), NESTED, ids=[f"{g}={o}" for g, o in NESTED])
def test_every_option_of_a_nested_group_instantiates(group: str, option: str):
    from scalar.rl.algos import Algorithm
    from scalar.rl.sampling import Sampling
    from scalar.rl.sources import ImagePrompts, LabeledPrompts
    from scalar.stages.align import AlignModule

    if group == "loss/contrastive":  # the contrastive term of loss=align (and of loss=infonce)
        from scalar.losses import InfoNCELoss, TDistContrastiveLoss

        loss = instantiate(_compose(f"{group}={option}").loss)
        assert (
            type(loss.contrastive)
            is {"tdist": TDistContrastiveLoss, "infonce": InfoNCELoss}[option]
        )
        return
    if group == "model/preprocess":  # the tower's pixel statistics reach the data encoding
        spec = OmegaConf.load(CONF / group / f"{option}.yaml")
        for model in GROUPS["model"]:
            cfg = _compose(f"model={model}", f"{group}={option}")
            assert list(cfg.model.vision.mean) == list(spec.mean), model
            assert list(cfg.data.encoding.std) == list(spec.std), model
        if option == "clip":  # the Python default of the data layer is the same numbers
            from scalar.data.settings import CLIP_MEAN, CLIP_STD

            assert (tuple(spec.mean), tuple(spec.std)) == (CLIP_MEAN, CLIP_STD)
        return
    if group == "stage/validation":  # both stages take it whole, and their modules accept it
        spec = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"))
        for stage in ("align", "rl"):
            module = _compose(f"stage={stage}", f"{group}={option}").stage.module
            raw = OmegaConf.to_container(module)  # interpolations unresolved, as written
            assert {k: raw[k] for k in spec} == spec
        cfg = _compose(f"{group}={option}", "stage.module.trainable=null")
        module = instantiate(cfg.stage.module)(
            model=torch.nn.Linear(1, 1), loss=None, optimizer=None
        )
        assert isinstance(module, AlignModule) and module.max_new_tokens == spec["max_new_tokens"]
        return
    cfg = _compose("stage=rl", f"{group}={option}")
    obj = instantiate(OmegaConf.select(cfg, group.replace("/", ".")))
    want = {"rl/algo": Algorithm, "rl/sampling": Sampling,
            "rl/prompts": ImagePrompts | LabeledPrompts}[group]  # fmt: skip
    assert isinstance(obj, want)
    named = {"images": "ImagePrompts", "labeled": "LabeledPrompts", "regions": "RegionPrompts",
             "default": "Sampling"}  # fmt: skip
    assert type(obj).__name__ == named.get(option, option.upper())  # scst -> SCST ...


@pytest.mark.parametrize("algo", GROUPS["rl/algo"])
@pytest.mark.parametrize("reward", GROUPS["reward"])
def test_the_rl_module_is_built_from_every_algorithm_and_reward(algo: str, reward: str):
    from scalar.stages.rl import RLModule

    cfg = _compose("stage=rl", f"rl/algo={algo}", f"reward={reward}", "stage.module.trainable=null")
    module = instantiate(cfg.stage.module)(model=torch.nn.Linear(1, 1), loss=None, optimizer=None)
    assert isinstance(module, RLModule) and module.algo.name == algo
    source = "ImagePrompts" if reward == "consistency" else "LabeledPrompts"
    source = "RegionPrompts" if reward in ("scst_caption", "spr", "registry") else source
    assert type(module.prompts).__name__ == source  # the reward config picks its prompts
    assert set(module.rewards.specs) == set(cfg.reward.terms)
    assert module.hparams["algo"]["name"] == algo  # plain values in the checkpoint


# -------------------------------------------------------------------- sweeps, debug, hydra
@pytest.mark.parametrize("option", GROUPS["experiment"])
def test_experiments_are_sweeps_whose_values_compose(option: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = _compose(f"experiment={option}", hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.task_name == option
    params = cfg.hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    for override in parsed:
        values = list(override.sweep_string_iterator())
        assert len(values) >= 2
        for value in values:
            job = _compose(f"experiment={option}", f"{override.key_or_group}={value}")
            assert job.seed == 42


def test_experiment_contrastive_sweeps_the_three_losses():
    cfg = _compose("experiment=ablation_contrastive", hydra=True)
    assert cfg.hydra.sweeper.params["loss"].split(",") == ["align", "infonce", "none"]


def test_optuna_search_builds_its_sweeper():
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    cfg = _compose("hparams_search=optuna", hydra=True)
    assert cfg.optimized_metric == "val/rec/acc@0.5"
    sweeper = instantiate(cfg.hydra.sweeper)
    assert isinstance(sweeper, OptunaSweeper)
    assert set(cfg.hydra.sweeper.params) == {
        "optim.lr",
        "loss.contrastive.nu",
        "loss.contrastive_weight",
    }


@pytest.mark.parametrize("option", GROUPS["debug"])
def test_debug_presets_instantiate_trainers(option: str, tmp_path: Path):
    cfg = _compose(f"debug={option}", f"paths.output_dir={tmp_path}")
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    assert cfg.task_name == "debug"
    if option == "fdr":
        assert trainer.fast_dev_run
    if option == "overfit":
        assert trainer.overfit_batches == 2
    if option == "profiler":
        assert type(trainer.profiler).__name__ == "SimpleProfiler"
    if option == "limit":
        assert trainer.max_steps == 20 and trainer.limit_val_batches == 2


def test_hydra_run_folders_are_timestamped_per_task():
    cfg = _compose("task_name=foo", hydra=True)
    run = cfg.hydra.run.dir
    assert run.startswith(f"{cfg.paths.log_dir}/foo/runs/")
    stamp = Path(run).name
    assert len(stamp) == len("2024-01-01_00-00-00") and stamp[4] == "-" and stamp[10] == "_"
    assert cfg.hydra.sweep.dir.startswith(f"{cfg.paths.log_dir}/foo/multiruns/")
    raw = OmegaConf.load(CONF / "hydra" / "default.yaml")
    assert raw.sweep._get_node("subdir")._value() == "${hydra.job.num}"  # one folder per job


def test_the_rl_stage_brings_its_own_learning_rate():
    assert _compose().optim.lr == pytest.approx(5e-4)  # align
    rl = _compose("stage=rl")
    assert rl.optim.lr == pytest.approx(2e-5) and rl.optim.scheduler.min_lr_ratio == 1.0
    assert _compose("stage=rl", "optim=adamw").optim.lr == pytest.approx(5e-4)  # CLI wins
    assert _compose("stage=rl", "optim.lr=1e-4").optim.lr == pytest.approx(1e-4)
