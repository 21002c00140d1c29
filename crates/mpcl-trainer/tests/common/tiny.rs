//! The small run that the end-to-end and GPU tests build their configs from. A module of its
//! own, beside `common`, so that the test files that do not use it do not compile it.

/// A run that takes seconds: 512 training images, a narrow network, two epochs.
pub const TINY: &str = r#"
name = "tiny"
[data]
train_subset = 512
test_subset = 256
[model]
widths = [8, 16]
projector_hidden = 32
projector_dim = 16
[train]
epochs = 2
batch_size = 64
log_every = 4
[eval.knn]
k = 20
[eval.probe]
epochs = 3
"#;
