"""Text in, text out: prompt encoding, GPT.generate and decoding for the training job and
train/sample.py."""
import cgad


def start_ids(tokenizer, prompt):
    """Token ids to start generating from: the prompt, or without one the end-of-text token
    (GPT-2) or a newline (char-level, the first character when there is no newline)."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_token is not None:
        return [tokenizer.eot_token]
    return tokenizer.encode("\n") if "\n" in getattr(tokenizer, "stoi", {}) else [0]


def sample_text(model, tokenizer, prompt=None, num_samples=1, max_new_tokens=200,
                temperature=1.0, top_k=None, device="cpu"):
    """Generate num_samples continuations of `prompt`; returns the texts (prompt included)."""
    ids = start_ids(tokenizer, prompt)
    idx = cgad.tensor([ids] * num_samples, dtype=cgad.int64, device=device)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k)
    skip = 0 if prompt else len(ids)  # the implicit start token is not part of the text
    return [tokenizer.decode(row[skip:]) for row in out.tolist()]
