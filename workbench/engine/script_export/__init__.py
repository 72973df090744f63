"""Show the code: an experiment as a standalone, readable PyTorch script that trains the same thing.

The script needs only torch (plus torchvision or scikit-learn where the dataset comes from
them). It reproduces the engine's run exactly: the same split (numpy's generator seeded
[seed, 0x5A17]), the same normalisation, the same shuffle order (a RandomSampler generator
seeded seed + epoch, or DistributedSampler with set_epoch), torch.manual_seed(seed) right
before the model is built, and the same loss, accumulation, precision and step order.

The parts: `rules` asks the engine what the script must do, `data`, `model`, `helpers`, `loop`
and `main` write the script's functions, `text` makes every value a safe literal, and `script`
puts the whole file together.
"""

from workbench.engine.script_export.script import export_script, write_script

__all__ = ["export_script", "write_script"]
