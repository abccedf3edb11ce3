"""A key/value cache for ``generate`` that grows in place instead of by concatenation.

Hugging Face's :class:`~transformers.DynamicCache` appends each decoding step's
keys and values with ``torch.cat``, which copies the whole cache of every layer
at every step. On the CPU at the default testbed's size (a 4-layer, width-128
model, 64-128 sequences of up to 112 new tokens), that copy was about a quarter
of a greedy decoding step's profile. :class:`GrowingCache` writes each step into
a buffer whose capacity doubles when full and hands attention a view of the
filled part: the same keys and values, so the same logits and the same tokens
(``tests/test_kv_cache.py`` checks greedy and sampled generations against the
dynamic cache), with one copy per doubling instead of one per step.

It is used by every ``generate`` call of the suite: the sampling loop
(:mod:`pivottrace.sampling`) and GRPO's rollouts
(:func:`install_growing_cache`, set by the trainer).
"""

from __future__ import annotations

import functools

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

MIN_CAPACITY = 64
"""Smallest buffer length (tokens) a layer allocates."""


class GrowingLayer(DynamicLayer):
    """A :class:`~transformers.cache_utils.DynamicLayer` whose tensors are views of a doubling buffer.

    ``keys``/``values`` are always ``buffer[..., :n, :]``. If another method of
    the layer replaced them (``crop``, ``batch_select_indices``, ``reorder_cache``,
    ``reset``...), the next :meth:`update` starts a new buffer from them, so
    every inherited method stays correct.
    """

    _buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n_old = self.keys.shape[-2] if self.keys.numel() else 0
        n = n_old + key_states.shape[-2]
        buffers = self._buffers if self._owns_views() else None
        if buffers is None or n > buffers[0].shape[-2]:
            capacity = max(n, 2 * n_old, MIN_CAPACITY)
            buffers = tuple(new.new_empty((*new.shape[:-2], capacity, new.shape[-1]))
                            for new in (key_states, value_states))
            if n_old:
                buffers[0][..., :n_old, :] = self.keys
                buffers[1][..., :n_old, :] = self.values
            self._buffers = buffers
        buffers[0][..., n_old:n, :] = key_states
        buffers[1][..., n_old:n, :] = value_states
        self.keys, self.values = buffers[0][..., :n, :], buffers[1][..., :n, :]
        return self.keys, self.values

    def _owns_views(self) -> bool:
        """Whether ``keys``/``values`` are still the views :meth:`update` made of the buffers."""
        if self._buffers is None or not self.keys.numel():
            return False
        return (self.keys.data_ptr() == self._buffers[0].data_ptr()
                and self.values.data_ptr() == self._buffers[1].data_ptr()
                and self.keys.shape[:-2] == self._buffers[0].shape[:-2])


class GrowingCache(DynamicCache):
    """A :class:`~transformers.DynamicCache` made of :class:`GrowingLayer` (full attention only)."""

    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)


def fits(model) -> bool:
    """Whether ``model``'s default cache is all plain :class:`DynamicLayer` (no sliding windows)."""
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


def new_cache(model) -> GrowingCache | None:
    """A fresh :class:`GrowingCache` for one ``generate`` call, or None where it does not fit."""
    return GrowingCache() if fits(model) else None


def wrap_generate(model, marker: str, defaults) -> None:
    """Wrap ``model.generate`` (an instance attribute) so that ``defaults(kwargs)`` fills the
    keyword arguments a caller left out, once per ``marker``.

    The class and other models are untouched; a second call with the same marker
    adds no second wrapper; what a caller passes is kept (``defaults`` only fills gaps).
    """
    if getattr(model.generate, marker, False):
        return
    plain = model.generate

    @functools.wraps(plain)
    def generate(*args, **kwargs):
        defaults(kwargs)
        return plain(*args, **kwargs)

    setattr(generate, marker, True)
    model.generate = generate


def _growing_cache_default(kwargs: dict) -> None:
    if kwargs.get("past_key_values") is None and kwargs.get("use_cache", True):
        kwargs["past_key_values"] = GrowingCache()


def install_growing_cache(model) -> None:
    """Make ``model.generate`` use a fresh :class:`GrowingCache` when the caller passes no cache.

    For generation code the suite does not call itself (TRL's rollouts). An
    instance attribute, so other models and the class are untouched; calling it
    twice installs it once; a model whose cache does not fit (:func:`fits`) is left
    as it is.
    """
    if fits(model):
        wrap_generate(model, "_growing_cache", _growing_cache_default)
