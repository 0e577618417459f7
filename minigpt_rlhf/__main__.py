from minigpt_rlhf.cli import main

raise SystemExit(main())
