advstudio train /work/data/music4-500 --arch cnn --preset modern --epochs 12 --validate-every 4 --adversarial paper004 --adversary-model /work/runs/music500-cnn --out /work/runs/music500-cnn-adv004
