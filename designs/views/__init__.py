"""Server-rendered pages of designs, by area: `designs` (browsing, files, branches, tags,
forks, settings), `proposals`, `mirrors`; `pages` holds what they share."""
