"""A folder as a deployment sees it: which files deploy, what is skipped and why, and the app section.
Shared by `anchor deploy` (the client plans its folder) and the git fetcher (a fetched commit's checkout)."""
