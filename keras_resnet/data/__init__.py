"""Layer 3, data: one module per dataset source, the tf.data pipeline and augmentation."""
