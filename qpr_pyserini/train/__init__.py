"""Training: Promptriever's contrastive recipe with the query-preserving regularizer, on the Hugging Face Trainer
(arguments, group sampler, loss, trainable model, trainer); ``train.stance`` builds SciFact-stance rows."""
