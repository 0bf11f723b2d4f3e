advstudio train /work/data/music4-500 --arch dnn --preset modern --dropout --validate-every 5 --adversarial paper004 --adversary-model /work/runs/music500-dnn --out /work/runs/music500-dnn-adv004
