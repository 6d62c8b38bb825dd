from mmupgrade.cli import main

raise SystemExit(main())
