"""KD training throughput: AutoDistiller's trainer vs TextBrewer's GeneralDistiller, and the teacher cache.

Same teacher (MiniLM-L6), same student (3 layers derived from it), same batches (dynamic padding,
batch size, max length), same loss (soft cross-entropy at T=1, optionally + hidden-state MSE on the
skip-mapped layers), same optimizer (AdamW) and schedule, all in one process, one after another,
alternating which trainer goes first (ABBA) over several rounds; medians are reported.

    python bench/kd_throughput.py                      # CPU, rotten_tomatoes, writes bench/results/
    python bench/kd_throughput.py --device cuda --bf16 # GPU: ours in bf16 and fp32, TextBrewer fp32

Reported: samples/s per variant and ratios (ours / TextBrewer; cached / uncached). The teacher cache
is reported twice: steady-state epochs after it is built, and amortised over all epochs including
the one-off build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

from models.batching import collate, encode_examples  # noqa: E402
from models.config import KDConfig  # noqa: E402
from models.modeling import derive_student, evenly_spaced_layers, load_classifier, load_tokenizer  # noqa: E402
from models.trainer import KDTrainer  # noqa: E402

transformers.logging.set_verbosity_error()
LABELS = ("fresh", "rotten")


def load_texts(args):
    from models.data import Example

    if args.texts:
        rows = [json.loads(line) for line in Path(args.texts).read_text().splitlines() if line.strip()]
        exs = [Example(r["text"], None, r["label"]) for r in rows]
    else:
        from models.data import load_builtin

        exs = list(load_builtin("rotten_tomatoes").train)
    return exs[: args.n]


def build_models(args):
    from models.assets import minilm_path

    path = Path(args.model_dir) if args.model_dir else Path(minilm_path())
    tok = load_tokenizer(path)
    if args.random_weights:  # throughput does not depend on weight values; used where weights cannot travel
        config = transformers.AutoConfig.from_pretrained(path, num_labels=2)
        torch.manual_seed(0)
        teacher = transformers.BertForSequenceClassification(config)
    else:
        teacher = load_classifier(path, LABELS, "classification")
    teacher.eval().requires_grad_(False)
    layers = evenly_spaced_layers(teacher.config.num_hidden_layers, args.student_layers)

    def student():
        torch.manual_seed(1)
        return derive_student(teacher, layers)

    return teacher, student, tok


def kd_config(args, *, cache: bool, bf16: bool, epochs: int) -> KDConfig:
    inter = {"loss": "mse", "strategy": "skip"} if args.hidden_mse else {"loss": "none"}
    return KDConfig.from_dict(
        {
            "prediction": {"loss": "ce", "temperature": 1.0},
            "intermediate": inter,
            "training": {
                "epochs": epochs,
                "batch_size": args.batch_size,
                "max_length": args.max_length,
                "cache_teacher": cache,
                "bf16": bf16,
                "max_grad_norm": 1.0,
                "warmup_ratio": 0.1,
            },
        }
    )


def run_ours(args, teacher, make_student, tok, train, dev, *, cache: bool, bf16: bool, epochs: int) -> dict:
    epoch_times: list[float] = []
    stamps = {"t": None}

    def progress(event):
        if event.get("stage") == "eval":
            epoch_times.append(time.perf_counter() - stamps["t"])
            stamps["t"] = None

    class Timed(KDTrainer):
        def train_one_epoch(self, epoch, state):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps["t"] = time.perf_counter()
            super().train_one_epoch(epoch, state)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        def evaluate(self, model, items, batch_size=None):  # excluded from the timed epochs
            t_pause = time.perf_counter()
            out = super().evaluate(model, items, batch_size)
            if stamps["t"] is not None:
                stamps["t"] += time.perf_counter() - t_pause
            return out

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Timed(
            student=make_student(),
            teacher=teacher,
            config=kd_config(args, cache=cache, bf16=bf16, epochs=epochs),
            task_kind="classification",
            label_names=LABELS,
            tokenizer=tok,
            workdir=tmp,
            device=args.device,
            progress=progress,
        )
        t0 = time.perf_counter()
        trainer.fit(train, dev)
        total = time.perf_counter() - t0
    build = trainer.cache_stats.get("build_s", 0.0)
    n = len(train)
    return {
        "epochs": epochs,
        "epoch_s": epoch_times,
        "samples_per_s_per_epoch": [n / t for t in epoch_times],
        "samples_per_s_steady": n * len(epoch_times) / sum(epoch_times),
        "cache_build_s": build,
        "samples_per_s_amortised": n * len(epoch_times) / (sum(epoch_times) + build),
        "total_s": total,
    }


def run_textbrewer(args, teacher, make_student, tok, train) -> dict:
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig

    student = make_student().to(args.device)
    teacher = teacher.to(args.device)
    items = encode_examples(train, tok, args.max_length, LABELS, "classification")
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(items), generator=gen).tolist()
    batches = []
    for s in range(0, len(order), args.batch_size):
        b = collate([items[i] for i in order[s : s + args.batch_size]], tok.pad_token_id, "classification")
        batches.append({k: v for k, v in b.items() if k in ("input_ids", "attention_mask", "token_type_ids")})

    def adaptor(batch, outputs):
        return {
            "logits": outputs.logits,
            "hidden": outputs.hidden_states,
            "inputs_mask": batch["attention_mask"],
        }

    matches = []
    if args.hidden_mse:
        n_t, n_s = teacher.config.num_hidden_layers, student.config.num_hidden_layers
        from models.losses import layer_pairs

        matches = [
            {"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "hidden_mse", "weight": 1}
            for t, s in layer_pairs("skip", n_t, n_s)
        ]
    for m in (teacher, student):
        m.config.output_hidden_states = (
            args.hidden_mse
        )  # ours requests hidden states only when a loss reads them
    with tempfile.TemporaryDirectory() as tmp:
        train_cfg = TrainingConfig(device=args.device, output_dir=tmp, log_dir=tmp, ckpt_frequency=1)
        distill_cfg = DistillationConfig(
            temperature=1,
            kd_loss_type="ce",
            kd_loss_weight=1,
            hard_label_weight=0,
            intermediate_matches=matches,
        )
        distiller = GeneralDistiller(
            train_config=train_cfg,
            distill_config=distill_cfg,
            model_T=teacher,
            model_S=student,
            adaptor_T=adaptor,
            adaptor_S=adaptor,
        )
        optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5, weight_decay=0.1)
        sched = transformers.get_linear_schedule_with_warmup(optimizer, int(0.1 * len(batches)), len(batches))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with distiller:
            distiller.train(optimizer, batches, num_epochs=1, scheduler=sched, max_grad_norm=1.0)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
    for m in (teacher, student):
        m.config.output_hidden_states = False
    return {"epoch_s": elapsed, "samples_per_s": len(train) / elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1024, help="training examples")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--student-layers", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="epochs for the cached run")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds of the uncached comparison")
    ap.add_argument("--hidden-mse", action="store_true", help="add hidden-state MSE on skip pairs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="also run ours with bf16 autocast (CUDA)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--texts", help="JSONL of {text, label} instead of the built-in rotten_tomatoes")
    ap.add_argument("--model-dir", help="teacher folder (default: built-in MiniLM-L6)")
    ap.add_argument("--random-weights", action="store_true", help="MiniLM architecture, random weights")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train = load_texts(args)
    dev = train[:2]
    teacher, make_student, tok = build_models(args)
    # Untimed warm-up of both code paths (first-call kernel and allocator set-up).
    warm = train[: 2 * args.batch_size]
    run_textbrewer(args, teacher, make_student, tok, warm)
    run_ours(args, teacher, make_student, tok, warm, dev, cache=False, bf16=args.bf16, epochs=1)
    # Alternate the two uncached trainers over several rounds so machine drift hits both alike.
    rounds: dict[str, list] = {"textbrewer_fp32": [], "ours_fp32_nocache": []}
    for r in range(args.rounds):  # ABBA order: neither trainer always runs first
        order = ["textbrewer_fp32", "ours_fp32_nocache"][:: 1 if r % 2 == 0 else -1]
        for name in order:
            if name == "textbrewer_fp32":
                rounds[name].append(run_textbrewer(args, teacher, make_student, tok, train))
            else:
                rounds[name].append(
                    run_ours(args, teacher, make_student, tok, train, dev, cache=False, bf16=False, epochs=1)
                )
        print(
            f"round {r + 1}: textbrewer {rounds['textbrewer_fp32'][-1]['samples_per_s']:.1f}/s, ours "
            f"{rounds['ours_fp32_nocache'][-1]['samples_per_s_steady']:.1f}/s",
            flush=True,
        )
    results = {
        "textbrewer_fp32": {
            "rounds": rounds["textbrewer_fp32"],
            "samples_per_s": statistics.median(x["samples_per_s"] for x in rounds["textbrewer_fp32"]),
        },
        "ours_fp32_nocache": {
            "rounds": rounds["ours_fp32_nocache"],
            "samples_per_s_steady": statistics.median(
                x["samples_per_s_steady"] for x in rounds["ours_fp32_nocache"]
            ),
        },
    }
    results["ours_fp32_cache"] = run_ours(
        args, teacher, make_student, tok, train, dev, cache=True, bf16=False, epochs=args.epochs
    )
    print("ours fp32 cache", results["ours_fp32_cache"], flush=True)
    if args.bf16:
        results["ours_bf16_nocache"] = run_ours(
            args, teacher, make_student, tok, train, dev, cache=False, bf16=True, epochs=1
        )
        results["ours_bf16_cache"] = run_ours(
            args, teacher, make_student, tok, train, dev, cache=True, bf16=True, epochs=args.epochs
        )
    tb = results["textbrewer_fp32"]["samples_per_s"]
    ratios = {
        "ours_nocache_vs_textbrewer": results["ours_fp32_nocache"]["samples_per_s_steady"] / tb,
        "ours_cache_steady_vs_textbrewer": results["ours_fp32_cache"]["samples_per_s_steady"] / tb,
        "ours_cache_amortised_vs_textbrewer": results["ours_fp32_cache"]["samples_per_s_amortised"] / tb,
        "cache_steady_vs_nocache": results["ours_fp32_cache"]["samples_per_s_steady"]
        / results["ours_fp32_nocache"]["samples_per_s_steady"],
        "cache_amortised_vs_nocache": results["ours_fp32_cache"]["samples_per_s_amortised"]
        / results["ours_fp32_nocache"]["samples_per_s_steady"],
    }
    if args.bf16:
        ratios["ours_bf16_nocache_vs_textbrewer_fp32"] = (
            results["ours_bf16_nocache"]["samples_per_s_steady"] / tb
        )
        ratios["ours_bf16_cache_steady_vs_textbrewer_fp32"] = (
            results["ours_bf16_cache"]["samples_per_s_steady"] / tb
        )
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": args.device,
        "device_name": device_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "settings": vars(args),
        "results": results,
        "ratios": ratios,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kind = "gpu" if args.device.startswith("cuda") else "cpu"
    tag = f"kd_throughput_{kind}{'_hidden' if args.hidden_mse else ''}"
    (out / f"{tag}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(ratios, indent=2))
    print(f"saved {out / (tag + '.json')}")


if __name__ == "__main__":
    main()
