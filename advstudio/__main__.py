from advstudio.cli import main

raise SystemExit(main())
