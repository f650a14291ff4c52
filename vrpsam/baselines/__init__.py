"""Training-free methods on the same frozen SAM (GP-SAM, PerSAM, PerSAM-F, Matcher), one
interface (:class:`~vrpsam.baselines.base.FewShotMethod`); built from ``conf/method/``."""
