"""Readers that turn raw scientific files into compact tensors, with every dropped record explained."""
