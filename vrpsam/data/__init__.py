"""Few-shot data: PASCAL-5i, COCO-20i, COCO→PASCAL, episodes and reference annotations."""
