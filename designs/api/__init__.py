"""The designs REST API, by area: `designs`, `proposals`, `mirrors`; `base` holds what they share."""
