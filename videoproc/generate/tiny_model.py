"""The built-in `tiny-random` model: Wan text-to-video and image-to-video with random weights.

Built offline in code from constructor arguments (the way diffusers' own tests build pipelines),
with a fixed seed, so every process builds the same weights and the same seed gives the same video.
Its videos are noise shaped by an untrained network: a demo of the pipeline, not of a model.
"""

from __future__ import annotations

from typing import Any

from videoproc.generate.models import Task

_WEIGHTS_SEED = 0
_TEXT_DIM = 32  # the transformer's text_dim must equal the text encoder's d_model
_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def build_tiny_pipeline(task: Task) -> Any:
    """A `WanPipeline` (`t2v`) or `WanImageToVideoPipeline` (`i2v`), float32 on the CPU."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanPipeline

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(_WEIGHTS_SEED)
        parts = dict(vae=_vae(), transformer=_transformer(task), text_encoder=_text_encoder())
    for module in parts.values():
        module.eval()  # freshly built modules are in training mode: dropout would make the output random
    pipeline_class = WanImageToVideoPipeline if task == "i2v" else WanPipeline
    return pipeline_class(tokenizer=_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), **parts)


def save_tiny_model(path: str, task: Task) -> str:
    """Write the tiny model as a diffusers-format folder (about 300 KiB) and return `path`."""
    build_tiny_pipeline(task).save_pretrained(path)
    return path


def _vae() -> Any:
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def _transformer(task: Task) -> Any:
    from diffusers import WanTransformer3DModel

    # Image-to-video conditions on 16 latent channels + 4 mask channels next to the 16 noisy ones.
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
        in_channels=36 if task == "i2v" else 16, out_channels=16, text_dim=_TEXT_DIM, freq_dim=256,
        ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )


def _text_encoder() -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=len(_SPECIAL_TOKENS) + 256, d_model=_TEXT_DIM, d_kv=8, d_ff=32,
                        num_layers=2, num_heads=4, relative_attention_num_buckets=8)
    return UMT5EncoderModel(config)


def _tokenizer() -> Any:
    """A byte-level tokenizer: 3 special tokens and the 256 byte symbols, no merges, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(_SPECIAL_TOKENS)}
    # alphabet() comes back in hash order, which differs between processes; sort it so that token
    # ids, and therefore videos, are the same in every process and in a saved copy.
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)
