# Stub Vivado commands for testing generated scripts without Vivado.
#
# Each command checks its arguments the way the design needs them and records a model of the design:
# the project, cells with their CONFIG properties, nets, interface connections, address assignments and
# build steps. A pin exists only if its cell's IP has it under the current CONFIG values (e.g. a PS
# slave port only once its enable parameter is 1, DPU masters only for cores < VER_DPU_NUM), so a
# connection to a missing pin fails like it would in Vivado. `stub::dump FILE` writes the model as JSON
# lines for the Python tests. Every command a script may call is defined here: anything else is an
# "invalid command name" error, as a misspelt command would be in Vivado.

namespace eval stub {
    variable project {}
    variable cells {}
    variable props {}
    variable nets {}
    variable pin_net {}
    variable intf {}
    variable intf_used {}
    variable segments {}
    variable calls {}
    variable files {}
    variable externals {}
    variable bd {}
    variable have_boards 1
}

proc stub::json {value} {
    set out "\""
    foreach ch [split $value ""] {
        scan $ch %c code
        if {$ch eq "\""} {
            append out "\\\""
        } elseif {$ch eq "\\"} {
            append out "\\\\"
        } elseif {$code < 32 || $code > 126} {
            append out [format "\\u%04x" $code]
        } else {
            append out $ch
        }
    }
    return "$out\""
}

proc stub::record {args} {
    variable calls
    lappend calls $args
}

proc stub::fail {message} {
    error "vivado stub: $message"
}

proc stub::param {cell name {default ""}} {
    variable props
    if {[dict exists $props $cell CONFIG.$name]} {
        return [dict get $props $cell CONFIG.$name]
    }
    return $default
}

proc stub::ipname {vlnv} {
    return [string tolower [lindex [split $vlnv :] 2]]
}

# Net pins and interface pins (name -> master|slave) of a cell under its current CONFIG values.
proc stub::pins {cell} {
    variable cells
    if {![dict exists $cells $cell]} {
        stub::fail "no cell $cell"
    }
    set ip [stub::ipname [dict get $cells $cell]]
    set net {}
    set intf {}
    switch -- $ip {
        zynq_ultra_ps_e {
            if {[stub::param $cell PSU__FPGA_PL0_ENABLE 0]} { lappend net pl_clk0 }
            if {[stub::param $cell PSU__USE__FABRIC__RST 0]} { lappend net pl_resetn0 }
            if {[stub::param $cell PSU__USE__IRQ0 0]} { lappend net pl_ps_irq0 }
            if {[stub::param $cell PSU__USE__M_AXI_GP2 0]} {
                lappend net maxihpm0_lpd_aclk
                dict set intf M_AXI_HPM0_LPD master
            }
            foreach {gp port clk} {0 S_AXI_HPC0_FPD saxihpc0_fpd_aclk 1 S_AXI_HPC1_FPD saxihpc1_fpd_aclk
                                   2 S_AXI_HP0_FPD saxihp0_fpd_aclk 3 S_AXI_HP1_FPD saxihp1_fpd_aclk
                                   4 S_AXI_HP2_FPD saxihp2_fpd_aclk 5 S_AXI_HP3_FPD saxihp3_fpd_aclk
                                   6 S_AXI_LPD saxi_lpd_aclk} {
                if {[stub::param $cell PSU__USE__S_AXI_GP$gp 0]} {
                    lappend net $clk
                    dict set intf $port slave
                }
            }
        }
        processing_system7 {
            if {[stub::param $cell PCW_EN_CLK0_PORT 0]} { lappend net FCLK_CLK0 }
            if {[stub::param $cell PCW_EN_RST0_PORT 0]} { lappend net FCLK_RESET0_N }
            if {[stub::param $cell PCW_USE_FABRIC_INTERRUPT 0] && [stub::param $cell PCW_IRQ_F2P_INTR 0]} { lappend net IRQ_F2P }
            if {[stub::param $cell PCW_USE_M_AXI_GP0 0]} {
                lappend net M_AXI_GP0_ACLK
                dict set intf M_AXI_GP0 master
            }
            foreach n {0 1 2 3} {
                if {[stub::param $cell PCW_USE_S_AXI_HP$n 0]} {
                    lappend net S_AXI_HP${n}_ACLK
                    dict set intf S_AXI_HP$n slave
                }
            }
            dict set intf DDR external
            dict set intf FIXED_IO external
        }
        dpuczdx8g {
            set cores [stub::param $cell VER_DPU_NUM 1]
            lappend net s_axi_aclk s_axi_aresetn m_axi_dpu_aclk m_axi_dpu_aresetn dpu_2x_clk dpu_2x_resetn
            dict set intf S_AXI slave
            for {set i 0} {$i < $cores} {incr i} {
                foreach m {INSTR DATA0 DATA1} { dict set intf DPU${i}_M_AXI_$m master }
                lappend net dpu${i}_interrupt
            }
            if {[stub::param $cell SFM_ENA 0]} {
                dict set intf SFM_M_AXI master
                lappend net sfm_interrupt
            }
            if {[stub::param $cell CLK_GATING_ENA 0]} {
                # one gated 2x clock and one clock-enable output per core (component.xml, trd_bd.tcl)
                lappend net dpu_2x_clk_ce
                for {set i 1} {$i < $cores} {incr i} { lappend net dpu${i}_2x_clk dpu${i}_2x_clk_ce }
            }
        }
        clk_wiz {
            lappend net clk_in1
            if {[stub::param $cell USE_RESET false] && [stub::param $cell RESET_TYPE ""] eq "ACTIVE_LOW"} {
                lappend net [stub::param $cell RESET_PORT resetn]
            }
            if {[stub::param $cell USE_LOCKED false]} { lappend net locked }
            for {set n 1} {$n <= [stub::param $cell NUM_OUT_CLKS 1]} {incr n} {
                set port [stub::param $cell CLK_OUT${n}_PORT clk_out$n]
                lappend net $port
                if {[stub::param $cell CLKOUT${n}_DRIVES BUFG] eq "Buffer_with_CE"} { lappend net ${port}_ce }
            }
        }
        proc_sys_reset {
            lappend net slowest_sync_clk ext_reset_in aux_reset_in mb_debug_sys_rst dcm_locked mb_reset \
                bus_struct_reset peripheral_reset interconnect_aresetn peripheral_aresetn
        }
        xlconcat {
            for {set n 0} {$n < [stub::param $cell NUM_PORTS 2]} {incr n} { lappend net In$n }
            lappend net dout
        }
        xlslice {
            lappend net Din Dout
        }
        axi_interconnect {
            lappend net ACLK ARESETN
            for {set j 0} {$j < [stub::param $cell NUM_SI 1]} {incr j} {
                set s [format S%02d $j]
                lappend net ${s}_ACLK ${s}_ARESETN
                dict set intf ${s}_AXI slave
            }
            for {set k 0} {$k < [stub::param $cell NUM_MI 1]} {incr k} {
                set m [format M%02d $k]
                lappend net ${m}_ACLK ${m}_ARESETN
                dict set intf ${m}_AXI master
            }
        }
        default {
            stub::fail "no pin model for IP $ip"
        }
    }
    return [list $net $intf]
}

proc stub::pin_exists {path kind} {
    set cell [file dirname $path]
    set pin [file tail $path]
    lassign [stub::pins $cell] net intf
    if {$kind eq "net"} {
        return [expr {$pin in $net}]
    }
    return [dict exists $intf $pin]
}

# -- project ----------------------------------------------------------------------------------------------
proc create_project {name dir args} {
    variable ::stub::project
    set ::stub::project [dict create name $name dir $dir part [dict get [stub::options $args] -part] board_part {} ip_repo_paths {}]
    file mkdir $dir
    stub::record create_project $name $dir
}

proc stub::options {words} {
    set out {}
    for {set i 0} {$i < [llength $words]} {incr i} {
        set w [lindex $words $i]
        if {[string index $w 0] eq "-"} {
            set next [lindex $words [expr {$i + 1}]]
            if {$next ne "" && [string index $next 0] ne "-" && $w ni {-force -quiet -latest_file_version -all -top -norecurse -fixed -include_bit -hierarchical}} {
                dict set out $w $next
                incr i
            } else {
                dict set out $w 1
            }
        } else {
            dict lappend out positional $w
        }
    }
    return $out
}

proc current_project {} { return project:[dict get $::stub::project name] }
proc current_fileset {} { return fileset:sources_1 }
proc get_board_parts {args} {
    set pattern [lindex $args end]
    if {!$::stub::have_boards} { return {} }
    return [list [string map {* 9.9} $pattern]]
}
proc update_ip_catalog {} { stub::record update_ip_catalog }
proc get_ipdefs {args} {
    set pattern [lindex $args end]
    if {[string match *:\\* $pattern]} {
        return [list [string map {* 9.9} $pattern]]
    }
    if {[string match -nocase *dpuczdx8g* $pattern]} {
        if {[llength [dict get $::stub::project ip_repo_paths]] == 0} { return {} }
    }
    return [list $pattern]
}

proc set_property {args} {
    # Objects are the single handles the get_* stubs return ("kind:name"; the name may hold any character).
    if {[lindex $args 0] eq "-dict"} {
        set pairs [lindex $args 1]
        set object [lindex $args 2]
    } else {
        set pairs [list [lindex $args 0] [lindex $args 1]]
        set object [lindex $args 2]
    }
    set kind [lindex [split $object :] 0]
    set name [string range $object [expr {[string length $kind] + 1}] end]
    foreach {key value} $pairs {
        switch -- $kind {
            bd_cell {
                if {![string match CONFIG.* $key]} { stub::fail "cell property $key is not a CONFIG value" }
                dict set ::stub::props $name $key $value
            }
            project {
                # ip_repo_paths is a list: record its elements one per line
                if {$key eq "ip_repo_paths"} { set value [join $value \n] }
                dict set ::stub::project $key $value
            }
            fileset { dict set ::stub::project fileset_$key $value }
            default { stub::fail "set_property on unknown object $object" }
        }
    }
}

proc get_property {name object} {
    set kind [lindex [split $object :] 0]
    set id [string range $object [expr {[string length $kind] + 1}] end]
    switch -- "$kind/$name" {
        run/PROGRESS { return "100%" }
        run/DIRECTORY { return [file join [dict get $::stub::project dir] "[dict get $::stub::project name].runs" $id] }
        default { stub::fail "get_property $name of $object" }
    }
}

# -- block design -----------------------------------------------------------------------------------------
proc create_bd_design {name} {
    set ::stub::bd $name
    stub::record create_bd_design $name
}
proc current_bd_design {args} {
    if {[llength $args] && [lindex $args 0] ne $::stub::bd} { stub::fail "no block design [lindex $args 0]" }
    return $::stub::bd
}
proc create_bd_cell {args} {
    set opts [stub::options $args]
    if {[dict get $opts -type] ne "ip"} { stub::fail "only IP cells are modelled" }
    set name [lindex [dict get $opts positional] end]
    if {[dict exists $::stub::cells $name]} { stub::fail "cell $name exists" }
    dict set ::stub::cells $name [dict get $opts -vlnv]
    dict set ::stub::props $name {}
}
proc get_bd_cells {name} {
    if {![dict exists $::stub::cells $name]} { stub::fail "get_bd_cells: no cell $name" }
    return bd_cell:$name
}
proc get_bd_pins {path} {
    if {![stub::pin_exists $path net]} { stub::fail "get_bd_pins: no pin $path" }
    return bd_pin:$path
}
proc get_bd_intf_pins {path} {
    if {![stub::pin_exists $path intf]} { stub::fail "get_bd_intf_pins: no interface pin $path" }
    return bd_intf_pin:$path
}
proc apply_bd_automation {args} {
    set opts [stub::options $args]
    stub::record apply_bd_automation [dict get $opts -rule] [dict get $opts -config]
    set cell [string range [lindex [dict get $opts positional] end] 8 end]
    dict lappend ::stub::externals $cell [dict get $opts -config]
}
proc connect_bd_net {args} {
    set opts [stub::options $args]
    set name [dict get $opts -net]
    foreach object [dict get $opts positional] {
        set pin [string range $object 7 end]
        if {[dict exists $::stub::pin_net $pin] && [dict get $::stub::pin_net $pin] ne $name} {
            stub::fail "pin $pin is on net [dict get $::stub::pin_net $pin] already"
        }
        dict set ::stub::pin_net $pin $name
        dict lappend ::stub::nets $name $pin
    }
}
proc connect_bd_intf_net {a b} {
    set a [string range $a 12 end]
    set b [string range $b 12 end]
    foreach p [list $a $b] {
        if {[dict exists $::stub::intf_used $p]} { stub::fail "interface pin $p is connected twice" }
        dict set ::stub::intf_used $p 1
    }
    lappend ::stub::intf [list $a $b]
}
proc get_bd_addr_spaces {path} {
    set cell [file dirname $path]
    if {![dict exists $::stub::cells $cell]} { stub::fail "get_bd_addr_spaces: no cell $cell" }
    return addr_space:$path
}
proc get_bd_addr_segs {path} {
    set parts [split $path /]
    if {[llength $parts] != 3} { stub::fail "get_bd_addr_segs: expected cell/interface/segment, got $path" }
    lassign $parts cell pin seg
    lassign [stub::pins $cell] net intf
    if {![dict exists $intf $pin] || [dict get $intf $pin] ne "slave"} { stub::fail "get_bd_addr_segs: $cell/$pin is not a slave interface" }
    return addr_seg:$path
}
proc assign_bd_address {args} {
    if {[llength $args] == 0} {
        lappend ::stub::segments [list auto]
        return
    }
    set opts [stub::options $args]
    set space [string range [dict get $opts -target_address_space] 11 end]
    set seg [string range [lindex [dict get $opts positional] end] 9 end]
    lappend ::stub::segments [list explicit $space $seg [dict get $opts -offset] [dict get $opts -range]]
}
proc validate_bd_design {} { stub::record validate_bd_design }
proc save_bd_design {} { stub::record save_bd_design }

# -- build ------------------------------------------------------------------------------------------------
proc stub::gen_dir {} {
    return [file join [dict get $::stub::project dir] "[dict get $::stub::project name].gen" sources_1 bd $::stub::bd]
}
proc get_files {name} { return [file join [stub::gen_dir] $name] }
proc make_wrapper {args} {
    set opts [stub::options $args]
    stub::record make_wrapper [dict get $opts -files]
    return [file join [stub::gen_dir] hdl "${::stub::bd}_wrapper.v"]
}
proc add_files {args} { stub::record add_files {*}$args }
proc update_compile_order {args} { stub::record update_compile_order }
proc get_runs {name} { return run:$name }
proc launch_runs {args} {
    set opts [stub::options $args]
    set run [lindex [dict get $opts positional] 0]
    stub::record launch_runs $run [dict get $opts -jobs]
    if {$run eq "impl_1"} {
        set dir [get_property DIRECTORY run:impl_1]
        file mkdir $dir [file join [stub::gen_dir] hw_handoff]
        close [open [file join $dir "[dict get $::stub::project fileset_top].bit"] w]
        close [open [file join [stub::gen_dir] hw_handoff "${::stub::bd}.hwh"] w]
    }
}
proc wait_on_run {run} { stub::record wait_on_run $run }
proc open_run {run} { stub::record open_run $run }
proc stub::write_report {kind args} {
    set opts [stub::options $args]
    set path [dict get $opts -file]
    set f [open $path w]
    if {[info exists ::stub_reports($kind)]} {
        set src [open $::stub_reports($kind)]
        puts -nonewline $f [read $src]
        close $src
    }
    close $f
    stub::record $kind $path
}
proc report_utilization {args} { stub::write_report report_utilization {*}$args }
proc report_timing_summary {args} { stub::write_report report_timing_summary {*}$args }
proc write_hw_platform {args} {
    set opts [stub::options $args]
    close [open [dict get $opts -file] w]
    stub::record write_hw_platform [dict get $opts -file]
}

# Any `exec` in a generated script is a defect (and the sign of an injection): refuse it.
rename exec stub::real_exec
proc exec {args} { stub::fail "exec called: $args" }

proc stub::dump {path} {
    set f [open $path w]
    fconfigure $f -encoding utf-8
    set p $::stub::project
    foreach key [dict keys $p] {
        puts $f "\[[stub::json project],[stub::json $key],[stub::json [dict get $p $key]]\]"
    }
    dict for {name vlnv} $::stub::cells {
        puts $f "\[[stub::json cell],[stub::json $name],[stub::json $vlnv]\]"
    }
    dict for {name values} $::stub::props {
        dict for {key value} $values {
            puts $f "\[[stub::json prop],[stub::json $name],[stub::json $key],[stub::json $value]\]"
        }
    }
    dict for {name pins} $::stub::nets {
        set items {}
        foreach pin $pins { lappend items [stub::json $pin] }
        puts $f "\[[stub::json net],[stub::json $name],\[[join $items ,]\]\]"
    }
    foreach pair $::stub::intf {
        puts $f "\[[stub::json intf],[stub::json [lindex $pair 0]],[stub::json [lindex $pair 1]]\]"
    }
    foreach seg $::stub::segments {
        set items {}
        foreach item $seg { lappend items [stub::json $item] }
        puts $f "\[[stub::json segment],[join $items ,]\]"
    }
    foreach call $::stub::calls {
        set items {}
        foreach item $call { lappend items [stub::json $item] }
        puts $f "\[[stub::json call],[join $items ,]\]"
    }
    dict for {cell configs} $::stub::externals {
        foreach config $configs {
            puts $f "\[[stub::json automation],[stub::json $cell],[stub::json $config]\]"
        }
    }
    # Every pin of every cell, for the "unconnected master" checks.
    dict for {cell vlnv} $::stub::cells {
        lassign [stub::pins $cell] net intf
        dict for {pin role} $intf {
            puts $f "\[[stub::json intf_pin],[stub::json $cell/$pin],[stub::json $role]\]"
        }
    }
    close $f
}
