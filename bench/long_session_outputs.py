"""The tool output of the scripted long session (bench/long_session.py), as code the agent runs.

`DEFINE` is the first code action: it defines `report(i)`, about 2.3 KB shaped like what ml-intern's tools print
(job status with TRL log lines, dataset inspection, a lighteval table, paper search, preflight, a failed job), and
`fetch_rows(dataset, split)`, which fails on an unknown split (the scripted loop). Later actions call them, so both
agents in the benchmark read the very same observations, produced inside their own executor.
"""

DEFINE = r'''
def trl_lines(i, first, count):
    lines = []
    for k in range(first, first + count):
        loss = 2.1 - 0.0009 * (i * 7 + k) % 1.3
        values = (loss, 0.6 + (k % 7) / 10, 2e-05 * (1 - k % 400 / 400), 4096 * (k + 1), 0.55 + (k % 9) / 100,
                  k % 1200 / 120)
        lines.append("{'loss': %.4f, 'grad_norm': %.3f, 'learning_rate': %.3e, 'num_tokens': %d.0, "
                     "'mean_token_accuracy': %.4f, 'epoch': %.2f}" % values)
    return lines


def report(i):
    kind = i % 6
    job = "68a1f%05x" % (i * 7919 % 1048576)
    step = (i * 37) % 1200
    if kind == 0:
        head = [f"job_id: {job}  run {i // 6 + 1}  stage: running  flavor: a10g-large  backend: hf-jobs",
                f"progress: step {step}/1200 (epoch {step / 400:.2f}), ETA {(1200 - step) // 80} min, "
                f"cost so far ${step * 0.0026:.2f} ($3.15/h)",
                f"metrics: loss {2.1 - step / 1000:.4f}, grad_norm 0.873, mean_token_accuracy {0.5 + step / 4000:.4f}",
                "log tail:"]
        body = trl_lines(i, step, 14) + [f" {step * 100 // 1200}%|###       | {step}/1200 [05:12<10:06,  1.31it/s]"]
    elif kind == 1:
        head = [f"dataset openai/gsm8k (config main, split train): 7473 rows, 2 columns",
                "columns: question (string), answer (string); format: question/answer, not a TRL format: "
                "reformat_dataset(mapping={'prompt': 'question', 'completion': 'answer'}) makes it prompt-completion",
                "rows:"]
        body = []
        for r in range(6):
            goats, hay = (r + 12) * (i % 9 + 2), (r + 12) * (i % 9 + 2) * (r % 4 + 1)
            body.append(f"row {r}: question: 'A farmer has {r + 12} cows and buys {i % 9 + 2} times as many goats. "
                        f"Each goat eats {r % 4 + 1} kg of hay a day. How much hay do the goats eat in a week?' "
                        f"answer: 'He buys {goats} goats. They eat {hay} kg a day, so {hay * 7} kg a week. "
                        f"#### {hay * 7}'")
    elif kind == 2:
        score = 0.48 + (i % 40) / 400
        head = [f"evaluation of /data/runs/{i // 6 + 1}/checkpoint-1200 on gsm8k|5 (lighteval 0.13, transformers "
                f"backend), n=1319, eval run {i // 6 + 40}",
                "|  Task   |Version|     Metric     |Value |   |Stderr|",
                "|---------|------:|----------------|-----:|---|-----:|",
                f"|gsm8k|5  |      0|extractive_match|{score:.4f}|±  |0.0137|",
                f"baseline 0.4810 (eval 1) -> delta {score - 0.481:+.4f}; best so far {max(score, 0.5523):.4f} (run 9)",
                "command: python -m evals.runner --model /data/runs/9/checkpoint-1200 --task gsm8k|5 --backend "
                "transformers --batch-size 8 --max-new-tokens 256",
                "sample predictions:"]
        body = [f"  [{r}] gold {r * 13 + i} | predicted {r * 13 + i + (r % 3 == 0)} | "
                f"{'correct' if r % 3 else 'wrong'} | 'The answer is {r * 13 + i + (r % 3 == 0)}.'" for r in range(12)]
    elif kind == 3:
        head = [f"search_papers('GRPO reasoning small models', page {i % 5 + 1}): 5 of 132 results"]
        body = [f"{2501 + r}.{i * 31 % 99999:05d}  Group relative policy optimisation for {r + 1}B models: "
                f"what matters (2025, {40 + r * 11} citations)\n    abstract: We study reinforcement learning from "
                f"verifiable rewards for models of {r + 1}B parameters on GSM8K and MATH. With a learning rate of "
                f"{r + 1}e-6 and {4 * (r + 2)} generations per prompt, accuracy improves by {3 + r}.{i % 10} points "
                f"over SFT; KL beta 0.0{r + 1} matters less than the reward shaping. Code: github.com/lab{r}/grpo-small"
                for r in range(5)]
    elif kind == 4:
        head = [f"preflight of /data/workspaces/local/s1/train_{i}.py: OK (12 checks, 0 errors, 2 warnings)"]
        body = [f"  ok   {name}" for name in ("PEP 723 header with pinned deps (trl==1.16.0, peft==0.21.2)",
                                               "dataset columns prompt, completion present in train split",
                                               "chat template found in tokenizer_config.json",
                                               "output_dir inside /data/runs", "bf16 off on CPU (use_cpu=True)",
                                               "max_steps 1200 and save_steps 400 divide", "eval split present",
                                               "LoRA r=16 alpha=32 targets q_proj,k_proj,v_proj,o_proj",
                                               "gradient_checkpointing on", "seed 42 set")]
        body += [f"  warn per_device_train_batch_size {2 + i % 4} x grad_accum 8 = {(2 + i % 4) * 8}: "
                 "small for SFT; consider 16 x 2",
                 "  warn learning_rate 2e-4 is high for full fine-tuning; fine for LoRA"]
        body += trl_lines(i, 0, 6)
    else:
        head = [f"job_id: {job}  run {i // 6 + 1}  stage: failed after {step // 60 + 1} min  flavor: a10g-small",
                "error: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 22.06 GiB total capacity; "
                "19.87 GiB already allocated)",
                "diagnosis: out of memory at step %d: halve per_device_train_batch_size, double "
                "gradient_accumulation_steps, or turn on gradient_checkpointing" % step,
                "log tail:"]
        body = trl_lines(i, step, 8) + ["Traceback (most recent call last):",
                                        '  File "/data/runs/%d/train.py", line 88, in <module>' % (i // 6 + 1),
                                        "    trainer.train()",
                                        "torch.OutOfMemoryError: CUDA out of memory."]
    text = "\n".join(head + body)
    filler = trl_lines(i, 900, 12)
    while len(text) < 2250:
        text = text + "\n" + filler.pop(0)
    return text[:2350]


def fetch_rows(dataset, split):
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r} of {dataset}: its splits are 'train' (7473 rows) and 'test' (1319)")
    return f"{dataset}[{split}]: 5 rows"


print("defined report(i) and fetch_rows(dataset, split)")
'''
