"""Writes a GPT-OSS checkpoint with Hugging Face transformers' own GptOssForCausalLM and the
logits HF computes for a prompt and its greedy continuation.

Run by tests/hf_gpt_oss.rs inside the venv of scripts/hf-env:

    python gpt_oss_hf.py --out DIR --ids 1,2,3 --steps 2 [--window 4] [--rope yarn|default]

Writes DIR/checkpoint (save_pretrained, safetensors, float32) and DIR/hf_logits.npy, float32
[prompt + steps, vocab]: the prefill rows of the prompt, then one row per greedy decode step,
each step fed the arg-max of the row before it and the KV cache HF's forward returned, the way
`generate` decodes (transformers/generation/utils.py, GenerationMixin._sample).
"""

import argparse
import os

import numpy as np
import torch
from transformers import GptOssConfig, GptOssForCausalLM


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--ids", required=True, help="comma separated prompt token ids")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--rope", choices=["yarn", "yarn-minimal", "default"], default="yarn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-positions", type=int, default=64)
    p.add_argument("--intermediate", type=int, default=256)
    p.add_argument("--attn-std", type=float, default=0.0)
    return p.parse_args()


def config(args):
    # The user's config from issue 14, point 5: 2 layers (sliding then full), hidden 256,
    # 16 heads / 8 kv heads of 32, 8 experts top-2, vocab 256, window 4, yarn x4 over 16.
    if args.rope == "yarn":
        rope = {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 16,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "truncate": False,
        }
    elif args.rope == "yarn-minimal":
        # What a user who names only the factor and the original length gets: HF's defaults
        # for the rest (beta_fast 32, beta_slow 1, truncate true).
        rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
    else:
        rope = {"rope_type": "default"}
    return GptOssConfig(
        num_hidden_layers=2,
        hidden_size=256,
        intermediate_size=args.intermediate,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=32,
        num_local_experts=8,
        num_experts_per_tok=2,
        vocab_size=256,
        sliding_window=args.window,
        layer_types=["sliding_attention", "full_attention"],
        rope_theta=150000.0,
        rope_scaling=rope,
        max_position_embeddings=args.max_positions,
        attention_bias=True,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def main():
    args = parse()
    torch.manual_seed(args.seed)
    cfg = config(args)
    cfg._attn_implementation = "eager"
    model = GptOssForCausalLM(cfg).eval()
    # The user's checkpoint: router, experts and sinks from N(0, 1) rather than HF's small init,
    # so the sinks and the routing really matter.
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.normal_(0.0, 1.0)
            if args.attn_std > 0:
                a = layer.self_attn
                for proj in (a.q_proj, a.k_proj, a.v_proj, a.o_proj):
                    proj.weight.normal_(0.0, args.attn_std)
                    proj.bias.normal_(0.0, args.attn_std)
            for t in (layer.mlp.router.weight, layer.mlp.router.bias):
                t.normal_(0.0, 1.0)
            e = layer.mlp.experts
            for t in (e.gate_up_proj, e.gate_up_proj_bias, e.down_proj, e.down_proj_bias):
                t.normal_(0.0, 1.0)
    ckpt = os.path.join(args.out, "checkpoint")
    model.save_pretrained(ckpt, safe_serialization=True)

    ids = torch.tensor([[int(x) for x in args.ids.split(",") if x.strip()]], dtype=torch.long)
    rows = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        rows.append(out.logits[0].float())
        cache = out.past_key_values
        last = out.logits[0, -1]
        for _ in range(args.steps):
            token = torch.argmax(last).reshape(1, 1)
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            last = out.logits[0, -1]
            rows.append(out.logits[0].float())
    logits = torch.cat(rows, dim=0).numpy().astype(np.float32)
    np.save(os.path.join(args.out, "hf_logits.npy"), logits)


if __name__ == "__main__":
    main()
