"""HiTeA tasks: pre-training and the downstream tasks (`base.HiteaDownstreamTask`)."""
