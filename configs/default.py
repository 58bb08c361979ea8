"""Default hyper-parameters: head on the frozen face ResNet's 128-D descriptor.

Override on the command line: ``--config.steps=500 --config.head.widths='(32,)'``.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.data_dir = 'workspace/data/school'
  config.pivot = ml_collections.config_dict.placeholder(object)  # None: the dataset's labels
  config.head_input = 'descriptor'  # or a tap, globally average pooled: 'level1', 'level2', ...
  config.head = ml_collections.ConfigDict({'widths': (64,), 'dropout': 0.2})
  config.unfreeze = ''  # '' or a level trained with the head, e.g. 'level2' (slow path only)
  # Learning-rate multiplier of the unfrozen layers (the head's input standardisation makes
  # their gradients ~1/feature-std larger). Measured on the tests' photos, sgd, 30 steps
  # (tests/test_train.py): learning_rate x scale up to 1e-6 trains, 1e-5 collapses the
  # features (loss ln 2); learning_rate 0.01 with scale 1 gives NaN at step 5.
  config.unfreeze_lr_scale = 1e-3
  config.fast_path = True  # cached features (frozen extractor)
  config.optimizer = 'adam'
  config.learning_rate = 1e-3
  config.weight_decay = 1e-4
  config.schedule = 'cosine'
  config.warmup_steps = 50
  config.steps = 2000
  config.batch_size = 64
  config.num_views = 4  # augmented views per chip (view 0 = the chip itself)
  config.augment = ml_collections.ConfigDict({
      'flip': True, 'max_rotation_deg': 8.0, 'max_scale': 0.05, 'max_translation': 0.04,
      'brightness': 0.1, 'contrast': 0.1, 'saturation': 0.1})
  config.imbalance = 'weighted'  # 'weighted' | 'oversample' | 'none'
  config.valid_fold = 0  # the dataset fold held out while training (-1: train on all)
  config.save_every = 500
  config.log_every = 10  # TensorBoard scalars every N steps (checkpoints: save_every)
  config.stop_after_steps = -1  # > 0: stop there as if killed (tests resuming)
  config.shuffle_labels_seed = -1  # >= 0: train on labels permuted by this seed (sanity check)
  # Evaluation (gradejax.evaluate): repeated stratified k-fold CV of a head on cached features.
  config.cv_folds = 5
  config.cv_repeats = 2
  config.cv_head = ml_collections.ConfigDict({
      'widths': (), 'steps': 200, 'learning_rate': 0.05, 'weight_decay': 1e-2})
  config.metric = 'roc_auc'  # CV score: roc_auc | balanced_accuracy | mcc
  config.num_permutations = 1000
  config.permutation_chunk = 100  # permutations per compiled call (bounds memory)
  config.bootstrap = 1000
  config.alpha = 0.05
  # Photo-condition baselines (docs/BASELINES.md): closed-form ridge head, penalty x n_train.
  config.baseline_ridge = 0.1
  config.blur_sigma = 12.0  # chip pixels: the blurred-photo baseline keeps colour and layout only
  # The CNN adds to the photo-condition baselines only with a gain >= min_gain (ROC-AUC) and
  # its bootstrap CI above 0 (docs/BASELINES.md argues 0.02).
  config.min_gain = 0.02
  config.harmonise = True  # the harmonised re-test (colour, jpeg, resolution, background)
  # 'faces' needs the fully harmonised signal to keep at least this share of the original's
  # distance from chance; a harmonisation alone leaving less removes it (docs/BASELINES.md).
  config.min_retained = 0.5
  config.power = 0.8  # the minimum detectable ROC-AUC is printed at this power
  config.ledger = ''  # '' = two folders above data_dir (workspace/ledger.jsonl)
  config.seed = 0
  config.log_images = False  # personal data: never log photos unless asked
  config.evaluate = True
  return config
