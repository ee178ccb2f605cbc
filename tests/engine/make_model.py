"""Writes a tiny Llama-architecture GGUF model with random weights, for tests
that need a real inference engine but no download.

    python make_model.py OUT.gguf [--seed N]

What llama.cpp needs of it (see the shared real-inference notes): the usual
`llama.*` hyperparameters and tensors, a SentencePiece-style vocabulary with
`<unk>`, `<s>`, `</s>`, all 256 byte-fallback tokens, single characters, the
`▁` space marker and words with every prefix, and a ChatML chat template whose
`<|im_end|>` is the end-of-sequence token.

The replies are words of the vocabulary in an order set by the weights: real
tokenization, sampling, streaming and timings, no meaning. Two tricks keep them
usable:
- residual dimension 0 holds a constant (added to every embedding, never
  written by attention or the feed-forward), so column 0 of `output.weight`
  acts as a per-token logit bias;
- that bias suppresses byte, control and partial-word tokens (a lone byte
  token would be invalid UTF-8, which makes a streaming server wait for the
  rest of a character) and favours `<|im_end|>` a little, so sampled replies
  end on their own (after 10 to 200 words; greedy ones run to `max_tokens`).
"""

import argparse

import gguf
import numpy as np

WORDS = """hello world local model warm cache fast quick brown fox jumps over lazy
dog the a is and of to in it you that was for on are with as his they be at
one have this from or had by hot word but what some we can out other were all
there when up use your how said an each she which do their time if will way
about many then them write would like so these her long make thing see him two
has look more day could go come did number sound no most people my over know
water than call first who may down side been now find any new work part take
get place made live where after back little only round man year came show every
good me give our under name very through just form sentence great think say
help low line differ turn cause much mean before move right boy old too same
tell does set three want air well also play small end put home read hand port
large spell add even land here must big high such follow act why ask men change
went light kind off need house picture try us again animal point mother near
build self earth father head stand own page should country found answer school
grow study still learn plant cover food sun four between state keep eye never
last let thought city tree cross farm hard start might story saw far sea draw
left late run while press close night real life few north""".split()

EMBD, LAYERS, HEADS, KV_HEADS, FF, CTX = 64, 2, 4, 2, 128, 2048
HEAD_DIM = EMBD // HEADS
# The constant in residual dimension 0, and the scale of the others.
CONSTANT = 8.0


def vocabulary():
    """(pieces, scores, types, ids of specials, ids of whole words)."""
    T = gguf.TokenType
    pieces, scores, types = [], [], []

    def add(piece, score, kind):
        pieces.append(piece)
        scores.append(float(score))
        types.append(int(kind))
        return len(pieces) - 1

    unk = add("<unk>", 0, T.UNKNOWN)
    bos = add("<s>", 0, T.CONTROL)
    eos_plain = add("</s>", 0, T.CONTROL)
    im_start = add("<|im_start|>", 0, T.CONTROL)
    im_end = add("<|im_end|>", 0, T.CONTROL)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0, T.BYTE)
    seen = set(pieces)
    singles = ["▁"] + [chr(c) for c in range(33, 127)]
    for piece in singles:
        if piece not in seen:
            seen.add(piece)
            add(piece, -1000, T.NORMAL)
    whole = []
    for word in dict.fromkeys(WORDS):
        full = "▁" + word
        for end in range(2, len(full) + 1):
            piece = full[:end]
            if piece in seen:
                continue
            seen.add(piece)
            at = add(piece, -1000 + len(piece), T.NORMAL)
            if piece == full:
                whole.append(at)
    specials = dict(unk=unk, bos=bos, eos_plain=eos_plain, im_start=im_start, im_end=im_end)
    return pieces, scores, types, specials, whole


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pieces, scores, types, specials, whole = vocabulary()
    vocab = len(pieces)

    writer = gguf.GGUFWriter(args.out, "llama")
    writer.add_name("warmline-tiny")
    writer.add_context_length(CTX)
    writer.add_embedding_length(EMBD)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FF)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-5)
    # One vector per input when the engine serves embeddings (--embedding true).
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(specials["bos"])
    writer.add_eos_token_id(specials["im_end"])
    writer.add_unk_token_id(specials["unk"])
    writer.add_add_bos_token(True)
    writer.add_chat_template(
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )

    def normal(shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embeddings = normal((vocab, EMBD), 1.0)
    embeddings[:, 0] = CONSTANT
    writer.add_tensor("token_embd.weight", embeddings)
    kv = HEAD_DIM * KV_HEADS
    for layer in range(LAYERS):
        prefix = f"blk.{layer}."
        attn_output = normal((EMBD, EMBD), 0.05)
        attn_output[0, :] = 0.0
        ffn_down = normal((EMBD, FF), 0.05)
        ffn_down[0, :] = 0.0
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(EMBD, dtype=np.float32))
        writer.add_tensor(prefix + "attn_q.weight", normal((EMBD, EMBD), 0.1))
        writer.add_tensor(prefix + "attn_k.weight", normal((kv, EMBD), 0.1))
        writer.add_tensor(prefix + "attn_v.weight", normal((kv, EMBD), 0.1))
        writer.add_tensor(prefix + "attn_output.weight", attn_output)
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(EMBD, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", normal((FF, EMBD), 0.1))
        writer.add_tensor(prefix + "ffn_up.weight", normal((FF, EMBD), 0.1))
        writer.add_tensor(prefix + "ffn_down.weight", ffn_down)
    writer.add_tensor("output_norm.weight", np.ones(EMBD, dtype=np.float32))
    # After the final norm, dimension 0 is about CONSTANT / rms ≈ 5.7: column 0
    # is a per-token bias of about 5.7 times its value.
    output = normal((vocab, EMBD), 0.2)
    output[:, 0] = -1.75  # suppressed: bytes, controls, partial words
    output[whole, 0] = 0.0
    output[specials["im_end"], 0] = 0.15  # about +1: sampled replies end on their own
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
